{{ config(post_hook="{{ index_vectors_by_space(this, label_space_names()) }}") }}

{#- The label sample's products (int_label_sample: drawn on the text spaces
    alone, so a failed image does not remove a product) that have a section,
    with their vectors in every text space, stored inline and
    indexed per space with HNSW (vector_cosine_ops). Every space is scored on
    the same products, so their label metrics compare on the same rows.
    Products without a section (`unknown`) are left out: the label is what
    is scored, and theirs is missing. Each product carries its duplicate
    group (int_duplicate_groups), which its 1-NN search excludes. -#}
{%- set spaces = label_space_names() %}

with

sample as (
    select * from {{ ref('int_label_sample') }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

duplicate_groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

text_vectors as (
    select
        valid_vectors.space,
        sample.product_id,
        sample.collection_section,
        valid_vectors.embedding
    from sample
    inner join products on sample.product_id = products.product_id
    inner join valid_vectors on sample.product_id = valid_vectors.product_id
    where
        not products.is_section_missing
        and {{ in_list('valid_vectors.space', spaces) }}
),

complete_products as (
    select product_id
    from text_vectors
    group by product_id
    having count(*) = {{ spaces | length }}
),

final as (
    select
        text_vectors.space,
        text_vectors.product_id,
        text_vectors.collection_section,
        coalesce(duplicate_groups.duplicate_group_id, text_vectors.product_id) as duplicate_group_id,
        text_vectors.embedding
    from text_vectors
    inner join complete_products on text_vectors.product_id = complete_products.product_id
    left join duplicate_groups on text_vectors.product_id = duplicate_groups.product_id
)

select * from final
