{{ config(materialized="view") }}

{#- Every stored vector checked against its space: known space, the
    configured dimension, non-zero, unit norm. Invalid vectors stay here with
    their reason and never reach the eval sample. -#}
with

vectors as (
    select * from {{ ref('stg_embeddings__vectors') }}
),

spaces as (
    select * from {{ ref('dim_embedding_spaces') }}
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
        end as rejection_reason
    from vectors
    left join spaces on vectors.space = spaces.space
),

final as (
    select
        *,
        rejection_reason is null as is_valid
    from checked
)

select * from final
