{{ config(materialized="view") }}

{#- Every stored vector checked against its space: known space, the
    configured dimension, non-zero, unit norm, and still the product's current
    input. Invalid vectors stay here with their reason and never reach the eval
    sample. -#}
with

vectors as (
    select * from {{ ref('stg_embeddings__vectors') }}
),

spaces as (
    select * from {{ ref('int_embedding_spaces') }}
),

{# The backfill keeps a stored vector when the product's new input (another
    image or text, or the same one under a new model or recipe) cannot be
    embedded: nothing is deleted. A rejection of another input hash recorded
    after the vector was written means the vector describes what the product
    was, not what it is, so it must not be measured with the current model. -#}
latest_rejections as (
    select distinct on (space, product_id)
        space,
        product_id,
        input_hash,
        reason,
        occurred_at
    from {{ ref('stg_embeddings__backfill_errors') }}
    order by space asc, product_id asc, occurred_at desc
),

checked as (
    select
        vectors.space,
        vectors.product_id,
        vectors.embedding,
        vectors.dims,
        vectors.norm,
        vectors.model_ref,
        vectors.embedded_at,
        case
            when spaces.space is null then 'unknown space: not declared in vars.embed_spaces'
            when vectors.dims <> spaces.dim
                then 'wrong dimension: ' || vectors.dims || ', the space has ' || spaces.dim
            when vectors.norm = 0 or vectors.norm = 'NaN'::float8 then 'zero vector: its cosine distance is undefined'
            when abs(vectors.norm - 1) > 1e-3
                then 'not L2-normalised: norm ' || round(vectors.norm::numeric, 4)
            when latest_rejections.occurred_at > vectors.embedded_at
                then 'stale: the product''s current input was rejected ('
                    || latest_rejections.reason
                    || ') after this vector was embedded; fix the input and run embed-udfs backfill'
        end as rejection_reason
    from vectors
    left join spaces on vectors.space = spaces.space
    left join latest_rejections
        on
            vectors.space = latest_rejections.space
            and vectors.product_id = latest_rejections.product_id
            and vectors.input_hash <> latest_rejections.input_hash
),

final as (
    select
        *,
        rejection_reason is null as is_valid
    from checked
)

select * from final
