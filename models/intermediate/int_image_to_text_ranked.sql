{{ config(pre_hook="{{ set_ef_search() }}") }}

{#- One model per direction so that dbt runs the two concurrently. -#}
{{ retrieval_ranks('image_to_text') }}
