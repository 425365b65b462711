{{ config(enabled=family_enabled('rerank')) }}
{#- (query, candidate) pairs `embed-udfs rerank` could not score, with the
    reason (a missing image, a NaN score). -#}
with

source as (
    select * from {{ source('rerank', 'rerank_errors') }}
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
