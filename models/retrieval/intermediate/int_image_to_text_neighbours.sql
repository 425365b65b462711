{{ config(enabled=family_enabled('retrieval'), pre_hook="{{ retrieval_search_settings('image_to_text') }}") }}

{#- Every eval query's top neighbours in the image_to_text direction of every
    pair (image queries, text gallery): neighbour_rank 1..neighbour_depth(pair,
    direction) by cosine distance, and whether the item is the positive or a
    duplicate of it. One model per direction, so that dbt runs the two
    searches concurrently; int_retrieval_neighbours is their union. The
    search, exact or HNSW (vars.retrieval_search), is macro
    nearest_neighbours's. -#}
with

duplicate_sets as (
    select * from {{ ref('int_eval_duplicate_sets') }}
),

{{ retrieval_neighbour_lists('image_to_text', ref('int_eval_vectors')) }}
{{ labelled_neighbours() }}
