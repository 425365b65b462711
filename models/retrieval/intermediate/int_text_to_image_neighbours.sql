{{ config(enabled=family_enabled('retrieval'), pre_hook="{{ retrieval_search_settings('text_to_image') }}") }}

{#- Every eval query's top neighbours in the text_to_image direction of every
    pair (text queries, image gallery): neighbour_rank 1..neighbour_depth(pair,
    direction) by cosine distance, and whether the item is the positive or a
    duplicate of it. One model per direction, so that dbt runs the two
    searches concurrently; int_retrieval_neighbours is their union. The
    search, exact or HNSW (vars.retrieval_search), is macro
    nearest_neighbours's. -#}
with

duplicate_sets as (
    select * from {{ ref('int_eval_duplicate_sets') }}
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
