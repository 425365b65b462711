{#- Everything refused on the way to the metrics, with the reason: inputs the
    backfill could not embed, and stored vectors that fail validation. -#}

with

backfill_errors as (
    select * from {{ ref('stg_embeddings__backfill_errors') }}
),

invalid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where not is_valid
),

final as (
    select
        'backfill' as stage,
        space,
        product_id,
        input_hash,
        reason,
        detail,
        occurred_at
    from backfill_errors

    union all

    select
        'validation' as stage,
        space,
        product_id,
        null as input_hash,
        rejection_reason as reason,
        null as detail,
        embedded_at as occurred_at
    from invalid_vectors
)

select * from final
