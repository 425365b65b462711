{{ config(enabled=family_enabled('rerank')) }}
{#- (query, candidate) pairs `embed-udfs rerank` could not score, with the
    reason (a missing image, a NaN score). -#}
with

source as (
    {{ job_output(source('rerank', 'rerank_errors'), {'reranker': 'text', 'pair': 'text', 'direction': 'text', 'query_product_id': 'text', 'candidate_product_id': 'text', 'input_hash': 'text', 'reason': 'text', 'detail': 'text', 'occurred_at': 'timestamptz'}) }}
),

final as (
    select
        reranker,
        pair,
        direction,
        query_product_id,
        candidate_product_id,
        input_hash,
        reason,
        detail,
        occurred_at
    from source
)

select * from final
