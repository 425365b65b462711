{{ config(pre_hook="{{ set_ef_search() }}") }}

{#- Dedup-tolerant ranks for the queries whose positive has a duplicate in
    the gallery (see macros/dedup_tolerant_ranks.sql). -#}
{{ dedup_tolerant_ranks() }}
