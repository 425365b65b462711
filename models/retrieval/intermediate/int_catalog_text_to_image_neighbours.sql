{{ config(
    enabled=family_enabled('retrieval'),
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook=[
        "{{ catalog_search_settings('text_to_image') }}",
        "{{ clear_catalog_lists(this, 'text_to_image') }}",
    ],
) }}
{%- set state = catalog_lists_state('text_to_image') %}

{#- Every eval query's top max(K) neighbours in the text_to_image direction of every
    pair against the whole-catalog gallery (int_catalog_gallery_vectors):
    the sampled queries of int_text_to_image_neighbours, the catalog's products as the
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
    'text_to_image', ref('int_eval_vectors'),
    {'gallery': ref('int_catalog_gallery_vectors'), 'sample_lists': ref('int_text_to_image_neighbours')}) }}
{{ labelled_neighbours(catalog=true, state=state, kept=catalog_lists_kept(this, state)) }}
