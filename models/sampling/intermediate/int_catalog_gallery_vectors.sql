{{ config(post_hook="{{ index_catalog_gallery(this, paired_space_names()) }}") }}

{#- The whole-catalog gallery: every product with a valid vector in a paired
    space, after dedup as the eval sample is (one representative per
    duplicate group when vars.eval_dedup is true), so the sample's gallery is
    a subset of it. Stored inline; indexed per space with HNSW only where the
    catalog search takes the index (macro index_catalog_gallery). -#}

-- the sample is drawn first, so the index decision can count it:
-- depends_on: {{ ref('int_eval_sample') }}

{%- set source_model = 'int_products_deduped' if var('eval_dedup') else 'int_duplicate_groups' %}

with

products as (
    select * from {{ ref(source_model) }}
),

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

final as (
    select
        valid_vectors.space,
        products.product_id,
        products.collection_section,
        products.duplicate_group_id,
        valid_vectors.embedding
    from products
    inner join valid_vectors on products.product_id = valid_vectors.product_id
    where {{ in_list('valid_vectors.space', paired_space_names()) }}
)

select * from final
