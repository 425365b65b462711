{{ config(pre_hook="{{ retrieval_search_settings() }}") }}
{{ retrieval_neighbours('image_to_text') }}
