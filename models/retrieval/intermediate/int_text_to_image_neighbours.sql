{{ config(pre_hook="{{ retrieval_search_settings('text_to_image') }}") }}
{{ retrieval_neighbours('text_to_image') }}
