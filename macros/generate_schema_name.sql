{#- As this project (the quick start): a model's schema is its layer's, the
    folder it sits in under its domain (models/<domain>/staging -> staging,
    intermediate -> intermediate, marts -> metrics), and the seeds go to
    metrics. The package schema that dbt_project.yml sets (`embed_metrics`)
    stands for "the layer's"; any other explicit `schema` config wins. Custom
    schemas are used as named, not prefixed with the target schema, so BI
    tools always find `metrics.*`.
    With the var metrics_staging (true during `embed-udfs refresh`), what
    belongs in `metrics` is built into `metrics__staging` instead, tested
    there and then swapped in whole (embed_udfs/publish.py).
    Installed as a package in another project (docs/package.md), dbt's own
    rule applies, as it would with no macro here: <target schema>_<+schema>,
    by default <target schema>_embed_metrics. A generate_schema_name of the
    installing project replaces this macro altogether. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if not is_root_project() -%}
        {{ default__generate_schema_name(custom_schema_name, node) }}
    {%- else -%}
        {%- set given = custom_schema_name | trim if custom_schema_name is not none else none -%}
        {%- if given is none or given == package_schema() -%}
            {%- set schema = layer_schema(node) -%}
            {%- if schema is none and given is not none and node is not none and node.resource_type == 'seed' -%}
                {%- set schema = 'metrics' -%}
            {%- endif -%}
        {%- else -%}
            {%- set schema = given -%}
        {%- endif -%}
        {%- if schema is none -%}
            {{ target.schema }}
        {%- elif schema == 'metrics' and var('metrics_staging', false) is sameas true -%}
            metrics__staging
        {%- else -%}
            {{ schema }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}


{#- The schema dbt_project.yml gives every model and seed of the package. -#}
{% macro package_schema() -%}
    {{ return('embed_metrics') }}
{%- endmacro %}


{#- Whether dbt runs this repository as the project, rather than as a package
    installed in another project (whose name is then project_name). -#}
{% macro is_root_project() -%}
    {{ return(project_name == 'embed_metrics') }}
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
