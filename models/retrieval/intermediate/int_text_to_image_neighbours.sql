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
{{ labelled_neighbours() }}
