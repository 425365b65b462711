{#- Families of metrics that a var can switch off (vars.enable_<family>,
    docs/package.md). A model of a family says so in its config:
    `{{ config(enabled=family_enabled('labels')) }}`. The config sits in the
    model rather than in dbt_project.yml because dbt reads a package's
    dbt_project.yml without the installing project's vars. rerank and ann
    tuning read the retrieval neighbour lists, so they need retrieval too. -#}
{% macro family_enabled(family) -%}
    {%- set needs = {'rerank': ['retrieval'], 'ann_tuning': ['retrieval']} -%}
    {%- set on = [var('enable_' ~ family, true)] -%}
    {%- for other in needs.get(family, []) -%}
        {%- do on.append(var('enable_' ~ other, true)) -%}
    {%- endfor -%}
    {%- for value in on if value is not sameas true -%}
        {%- if value is not sameas false -%}
            {{ exceptions.raise_compiler_error(
                "vars.enable_" ~ family ~ " is " ~ (value | string | tojson)
                ~ "; it must be true or false (unquoted)."
            ) }}
        {%- endif -%}
        {{ return(false) }}
    {%- endfor -%}
    {{ return(true) }}
{%- endmacro %}
