{{ config(schema='metrics') }}

{#- The eval sample, balanced per section and deterministic for a seed:
    each section's products are shuffled by a seeded hash, then taken round
    robin (every section's 1st, then every section's 2nd, ...) until N. Small
    sections are taken whole, large ones are capped at the same depth. Only
    products with a valid vector in every paired space are eligible. -#}
{%- set spaces = paired_space_names() %}
{%- set seed = var('eval_seed') %}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

eligible as (
    select
        products.product_id,
        products.collection_section
    from products
    {%- if spaces %}
    inner join valid_vectors
        on products.product_id = valid_vectors.product_id
            and valid_vectors.space in ({% for s in spaces %}'{{ s }}'{{ "," if not loop.last }}{% endfor %})
    group by products.product_id, products.collection_section
    having count(distinct valid_vectors.space) = {{ spaces | length }}
    {%- endif %}
),

shuffled as (
    select
        *,
        row_number() over (
            partition by collection_section
            order by md5(product_id || ':{{ seed }}'), product_id
        ) as section_rank
    from eligible
),

interleaved as (
    select
        *,
        row_number() over (
            order by section_rank, md5(collection_section || ':{{ seed }}'), collection_section
        ) as sample_rank
    from shuffled
),

final as (
    select
        product_id,
        collection_section,
        section_rank,
        sample_rank
    from interleaved
    where sample_rank <= {{ var('eval_sample_size') }}
)

select * from final
