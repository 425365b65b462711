{#- Custom schemas are used as named (staging, intermediate, metrics), not
    prefixed with the target schema, so BI tools always find `metrics.*`.
    With the var metrics_staging (true during `embed-udfs refresh`), what
    belongs in `metrics` is built into `metrics__staging` instead, tested
    there and then swapped in whole (embed_udfs/publish.py). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- elif custom_schema_name | trim == 'metrics' and var('metrics_staging', false) is sameas true -%}
        metrics__staging
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
