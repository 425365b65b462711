with

errors as (
    select * from {{ source('embeddings', 'backfill_errors') }}
),

final as (
    select
        space,
        product_id::text as product_id,
        input_hash,
        reason,
        detail,
        model_ref,
        occurred_at
    from errors
)

select * from final
