{{ config(pre_hook="{{ retrieval_search_settings() }}") }}
{{ retrieval_neighbours('text_to_image') }}
