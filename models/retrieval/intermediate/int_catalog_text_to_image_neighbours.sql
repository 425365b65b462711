{{ config(enabled=family_enabled('retrieval'), pre_hook="{{ catalog_search_settings('text_to_image') }}") }}

{#- Every eval query's top max(K) neighbours in the text_to_image direction of every
    pair against the whole-catalog gallery (int_catalog_gallery_vectors):
    the sampled queries of int_text_to_image_neighbours, the catalog's products as the
    gallery. Searched exactly while the cost stays within
    vars.catalog_exact_max_pairs, else through the gallery's HNSW index
    (macro catalog_search_method); where the catalog gallery is the sample's
    own, the sample's lists are copied. -#}
with

duplicate_sets as (
    select * from {{ ref('int_catalog_duplicate_sets') }}
),

{{ retrieval_neighbour_lists(
    'text_to_image', ref('int_eval_vectors'),
    {'gallery': ref('int_catalog_gallery_vectors'), 'sample_lists': ref('int_text_to_image_neighbours')}) }}
{{ labelled_neighbours() }}
