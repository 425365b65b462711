{{ config(enabled=family_enabled('dedup'), post_hook="{{ index_vectors_by_space(this, near_duplicate_space_names()) }}") }}

{#- Every product's valid vector in the space marked near_duplicates: true,
    stored inline with an HNSW vector_cosine_ops index, so that the
    near-duplicate search is one index scan per product. Empty when no space
    is marked. -#}
{%- set spaces = near_duplicate_space_names() %}

with

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

final as (
    select
        space,
        product_id,
        embedding
    from valid_vectors
    where {{ in_list('space', spaces) }}
)

select * from final
