{#- How many of each query's nearest items the failure marts keep
    (fct_retrieval_failure_neighbours) and the report's gallery shows. -#}
{% macro failure_list_length() -%}
    5
{%- endmacro %}
