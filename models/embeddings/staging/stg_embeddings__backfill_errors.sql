with

errors as (
    {{ job_output(source('embeddings', 'backfill_errors'), {'space': 'text', 'product_id': 'text', 'input_hash': 'text', 'reason': 'text', 'detail': 'text', 'model_ref': 'text', 'occurred_at': 'timestamptz'}) }}
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
