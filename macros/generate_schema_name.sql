{#- A model's schema is its layer's: the folder it sits in under its domain
    (models/<domain>/staging -> staging, intermediate -> intermediate,
    marts -> metrics). An explicit `schema` config (the seeds' metrics) wins.
    Custom schemas are used as named, not prefixed with the target schema,
    so BI tools always find `metrics.*`.
    With the var metrics_staging (true during `embed-udfs refresh`), what
    belongs in `metrics` is built into `metrics__staging` instead, tested
    there and then swapped in whole (embed_udfs/publish.py). -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set schema = custom_schema_name | trim if custom_schema_name is not none else layer_schema(node) -%}
    {%- if schema is none -%}
        {{ target.schema }}
    {%- elif schema == 'metrics' and var('metrics_staging', false) is sameas true -%}
        metrics__staging
    {%- else -%}
        {{ schema }}
    {%- endif -%}
{%- endmacro %}


{#- The schema of a model's layer folder, none for any other node. -#}
{% macro layer_schema(node) -%}
    {%- set layers = {'staging': 'staging', 'intermediate': 'intermediate', 'marts': 'metrics'} -%}
    {%- if node is not none and node.resource_type == 'model' -%}
        {%- for folder in node.fqn[1:-1] if folder in layers -%}
            {{ return(layers[folder]) }}
        {%- endfor -%}
    {%- endif -%}
    {{ return(none) }}
{%- endmacro %}
