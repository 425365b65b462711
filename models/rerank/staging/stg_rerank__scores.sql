{{ config(enabled=family_enabled('rerank')) }}
{#- Reranker scores written by `embed-udfs rerank`, one row per (reranker,
    pair, direction, query, candidate). -#}
with

source as (
    {{ job_output(source('rerank', 'rerank_scores'), {'reranker': 'text', 'pair': 'text', 'direction': 'text', 'query_product_id': 'text', 'candidate_product_id': 'text', 'score': 'float8', 'scorer_ref': 'text', 'input_hash': 'text', 'scored_at': 'timestamptz'}) }}
),

final as (
    select
        reranker,
        pair,
        direction,
        query_product_id,
        candidate_product_id,
        score::float8 as score,
        scorer_ref,
        input_hash,
        scored_at
    from source
)

select * from final
