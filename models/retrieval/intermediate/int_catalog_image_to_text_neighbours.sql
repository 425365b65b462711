{{ config(
    enabled=family_enabled('retrieval'),
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook=[
        "{{ catalog_search_settings('image_to_text') }}",
        "{{ clear_catalog_lists(this, 'image_to_text') }}",
    ],
) }}
{%- set state = catalog_lists_state('image_to_text') %}

{#- Every eval query's top max(K) neighbours in the image_to_text direction of every
    pair against the whole-catalog gallery (int_catalog_gallery_vectors):
    the sampled queries of int_image_to_text_neighbours, the catalog's products as the
    gallery. Searched exactly while the cost stays within
    vars.catalog_exact_max_pairs, else through the gallery's HNSW index
    (macro catalog_search_method); where the catalog gallery is the sample's
    own, the sample's lists are copied.

    Incremental: where nothing the lists are made of changed since they were
    searched (the searches, the catalog gallery, the sampled queries, the
    duplicate sets: macro catalog_lists_state), a build keeps them and runs
    no search; otherwise it clears them and searches again. -#}
with

duplicate_sets as (
    select * from {{ ref('int_catalog_duplicate_sets') }}
),

{{ retrieval_neighbour_lists(
    'image_to_text', ref('int_eval_vectors'),
    {'gallery': ref('int_catalog_gallery_vectors'), 'sample_lists': ref('int_image_to_text_neighbours')}) }}
{{ labelled_neighbours(catalog=true, state=state, kept=catalog_lists_kept(this, state)) }}
