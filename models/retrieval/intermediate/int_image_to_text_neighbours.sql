{{ config(pre_hook="{{ retrieval_search_settings('image_to_text') }}") }}
{{ retrieval_neighbours('image_to_text') }}
