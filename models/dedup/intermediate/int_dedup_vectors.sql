{%- set spaces = near_duplicate_space_names() %}
{{ config(
    enabled=family_enabled('dedup'),
    materialized='incremental',
    unique_key=['space', 'product_id'],
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=[
        "{{ delete_removed_products(this, ref('int_vectors_validated'), keys=['space', 'product_id'], where='products.is_valid and ' ~ in_list('products.space', near_duplicate_space_names())) }}",
        "{{ index_vectors_by_space(this, near_duplicate_space_names()) }}",
    ],
) }}

{#- Every product's valid vector in the space marked near_duplicates: true,
    stored inline with an HNSW vector_cosine_ops index, so that the
    near-duplicate search is one index scan per product. Empty when no space
    is marked.

    Incremental: a build writes only the vectors that are new or changed,
    stamped changed_at, so the near-duplicate search runs
    again from those products alone; the post_hooks drop the vectors that are
    gone or no longer valid, and the index, built once, takes the new rows as
    they arrive. -#}

with

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

marked as (
    select
        space,
        product_id,
        embedding
    from valid_vectors
    where {{ in_list('space', spaces) }}
),

final as (
    select
        marked.*,
        now() as changed_at
    from marked
    {%- if is_incremental() %}
    left join {{ this }} as previous
        on marked.space = previous.space and marked.product_id = previous.product_id
    where
        previous.embedding is distinct from marked.embedding
        -- a table from before changed_at existed: every row once
        or previous.changed_at is null
    {%- endif %}
)

select * from final
