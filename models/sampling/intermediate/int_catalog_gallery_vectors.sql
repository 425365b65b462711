{%- set source_model = 'int_products_deduped' if var('eval_dedup') else 'int_duplicate_groups' %}
{{ config(
    materialized='incremental',
    unique_key=['space', 'product_id'],
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    post_hook=[
        "{{ delete_removed_products(this, ref('int_vectors_validated'), keys=['space', 'product_id'], where='products.is_valid and ' ~ in_list('products.space', paired_space_names()) ~ ' and exists (select 1 from ' ~ ref('int_products_deduped' if var('eval_dedup') else 'int_duplicate_groups') ~ ' as kept_products where kept_products.product_id = products.product_id)') }}",
        "{{ index_catalog_gallery(this, paired_space_names()) }}",
    ],
) }}

{#- The whole-catalog gallery: every product with a valid vector in a paired
    space, after dedup as the eval sample is (one representative per
    duplicate group when vars.eval_dedup is true), so the sample's gallery is
    a subset of it. Stored inline; indexed per space with HNSW only where the
    catalog search takes the index (macro index_catalog_gallery).

    Incremental: a build writes only the rows whose vector, section or
    duplicate group changed, stamped changed_at, the post_hooks drop the
    rows that left the gallery, and the index, built once, takes the new
    rows as they arrive. The catalog neighbour lists read its row count and
    latest changed_at to tell whether the gallery changed at all (macro
    catalog_lists_fingerprint). -#}

-- the sample is drawn first, so the index decision can count it:
-- depends_on: {{ ref('int_eval_sample') }}

with

products as (
    select * from {{ ref(source_model) }}
),

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

gallery as (
    select
        valid_vectors.space,
        products.product_id,
        products.collection_section,
        products.duplicate_group_id,
        valid_vectors.embedding
    from products
    inner join valid_vectors on products.product_id = valid_vectors.product_id
    where {{ in_list('valid_vectors.space', paired_space_names()) }}
),

final as (
    select
        gallery.*,
        now() as changed_at
    from gallery
    {%- if is_incremental() %}
    left join {{ this }} as previous
        on gallery.space = previous.space and gallery.product_id = previous.product_id
    where
        (previous.collection_section, previous.duplicate_group_id, previous.embedding)
        is distinct from (gallery.collection_section, gallery.duplicate_group_id, gallery.embedding)
    {%- endif %}
)

select * from final
