{{ config(post_hook="{{ index_vectors_by_space(this, label_space_names()) }}") }}

{#- The label sample's products (int_label_sample: drawn on the text spaces
    alone, so a failed image does not remove a product, and every sampled
    product has a valid vector in each text space) that have a section, with
    their vectors in every text space, stored inline and indexed per space
    with HNSW (vector_cosine_ops). Every space is scored on the same
    products, so their label metrics compare on the same rows. Products
    without a section (`unknown`) are left out: the label is what is scored,
    and theirs is missing. Each product carries its duplicate group, which
    its 1-NN search excludes. The rows are stored in product_id order (each
    product's spaces in configuration order): the order the label figures
    have always been computed in, which the single-precision vector sums
    behind them and the KMeans contingency sums follow. -#}
{%- set spaces = label_space_names() %}

with

sample as (
    select * from {{ ref('int_label_sample') }}
    where not is_section_missing
),

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

final as (
    select
        valid_vectors.space,
        sample.product_id,
        sample.collection_section,
        sample.duplicate_group_id,
        valid_vectors.embedding
    from sample
    inner join valid_vectors on sample.product_id = valid_vectors.product_id
    where {{ in_list('valid_vectors.space', spaces) }}
    {%- if spaces %}
        order by
            sample.product_id,
            array_position(array[{% for space in spaces %}{{ sql_string(space) }}{{ ", " if not loop.last }}{% endfor %}]::text[], valid_vectors.space)
    {%- endif %}
)

select * from final
