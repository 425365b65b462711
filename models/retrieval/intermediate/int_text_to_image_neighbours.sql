{{ config(pre_hook="{{ retrieval_search_settings('text_to_image') }}") }}

{#- Every eval query's top neighbours in the text_to_image direction of every
    pair (text queries, image gallery): neighbour_rank 1..neighbour_depth(pair,
    direction) by cosine distance, and whether the item is the positive or a
    duplicate of it. One model per direction, so that dbt runs the two
    searches concurrently; int_retrieval_neighbours is their union. The
    search, exact or HNSW (vars.retrieval_search), is macro
    nearest_neighbours's. -#}
with

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

sampled as (
    select * from {{ ref('int_eval_sample') }}
),

-- for each sampled product that shares its duplicate group with other
-- sampled products, those products (none when vars.eval_dedup keeps one
-- product per group): a list item among them is a duplicate of the positive
sampled_groups as (
    select
        sampled.product_id,
        groups.duplicate_group_id
    from sampled
    inner join groups on sampled.product_id = groups.product_id
),

duplicate_sets as (
    select
        own.product_id,
        array_agg(other.product_id order by other.product_id) as duplicate_ids
    from sampled_groups as own
    inner join sampled_groups as other
        on
            own.duplicate_group_id = other.duplicate_group_id
            and own.product_id <> other.product_id
    group by own.product_id
),

{{ retrieval_neighbour_lists('text_to_image', ref('int_eval_vectors')) }}
final as (
    select
        pair,
        direction,
        query_space,
        gallery_space,
        query_product_id,
        collection_section,
        neighbour_rank::integer as neighbour_rank,
        neighbour_product_id,
        neighbour_section,
        distance::float8 as distance,
        neighbour_product_id = query_product_id as is_positive,
        coalesce(neighbour_product_id = any(duplicate_ids), false) as is_duplicate_of_positive
    from listed
)

select * from final
