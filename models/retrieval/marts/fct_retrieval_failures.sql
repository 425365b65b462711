{{ config(enabled=family_enabled('retrieval')) }}
{#- Every query of every pair and direction with what a failure gallery
    shows about it: its product's name and image, the rank its positive got
    (and the dedup-tolerant rank), and worst_order, its place among the
    queries of its section from the worst (1) down. Worst means the positive
    ranked furthest down: a positive beyond max(K) (null rank) comes first,
    then the larger rank, then the farther positive, then product_id, so the
    order is total and the same on every run. -#}
{%- set max_k = max_k() %}

with

-- the sample's gallery: the neighbour lists the gallery shows are the sample's
ranks as (
    select * from {{ ref('fct_retrieval_ranks') }}
    where gallery_scope = 'sample'
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

ordered as (
    select
        ranks.pair,
        ranks.direction,
        ranks.query_space,
        ranks.gallery_space,
        ranks.product_id as query_product_id,
        ranks.collection_section,
        products.product_name as query_name,
        products.store_name as query_store_name,
        products.image_uri as query_image_uri,
        ranks.positive_rank,
        ranks.dedup_tolerant_rank,
        ranks.positive_distance,
        ranks.n_retrieved,
        ranks.n_gallery_duplicates,
        coalesce(ranks.positive_rank, {{ max_k }} + 1) > 1 as is_failure,
        coalesce(ranks.dedup_tolerant_rank, {{ max_k }} + 1)
        < coalesce(ranks.positive_rank, {{ max_k }} + 1) as is_duplicate_closer,
        row_number() over (
            partition by ranks.pair, ranks.direction, ranks.collection_section
            order by
                coalesce(ranks.positive_rank, {{ max_k }} + 1) desc,
                ranks.positive_distance desc,
                ranks.product_id asc
        )::integer as worst_order
    from ranks
    left join products on ranks.product_id = products.product_id
),

final as (
    select * from ordered
)

select * from final
