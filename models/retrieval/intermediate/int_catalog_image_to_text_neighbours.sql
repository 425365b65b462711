{{ config(pre_hook="{{ catalog_search_settings('image_to_text') }}") }}

{#- Every eval query's top max(K) neighbours in the image_to_text direction of every
    pair against the whole-catalog gallery (int_catalog_gallery_vectors):
    the sampled queries of int_image_to_text_neighbours, the catalog's products as the
    gallery. Searched exactly while the cost stays within
    vars.catalog_exact_max_pairs, else through the gallery's HNSW index
    (macro catalog_search_method); where the catalog gallery is the sample's
    own, the sample's lists are copied. -#}
with

sampled as (
    select * from {{ ref('int_eval_sample') }}
),

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

-- each sampled product's duplicate group members, wherever they are in the catalog
duplicate_sets as (
    select
        sampled.product_id,
        array_agg(members.product_id order by members.product_id) as duplicate_ids
    from sampled
    inner join groups as own on sampled.product_id = own.product_id
    inner join groups as members
        on
            own.duplicate_group_id = members.duplicate_group_id
            and own.product_id <> members.product_id
    group by sampled.product_id
),

{{ retrieval_neighbour_lists(
    'image_to_text', ref('int_eval_vectors'),
    {'gallery': ref('int_catalog_gallery_vectors'), 'sample_lists': ref('int_image_to_text_neighbours')}) }}
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
