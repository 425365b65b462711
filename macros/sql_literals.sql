{#- Every configuration string that reaches SQL goes through these: space and
    pair names, models, checkpoints, prompts. A value is never pasted between
    quotes by hand, so a quote in a checkpoint path cannot break the SQL (or
    inject any). -#}

{#- A SQL string literal for `value`: single quotes doubled, `null` for none. -#}
{% macro sql_string(value) -%}
    {%- if value is none -%}
        null
    {%- else -%}
        '{{ (value | string).replace("'", "''") }}'
    {%- endif -%}
{%- endmacro %}


{#- `expression in (values...)`, with a list that may be empty: an empty list
    matches nothing instead of being a syntax error. -#}
{% macro in_list(expression, values) -%}
    {{ expression }} in (
        {%- for value in values %}{{ sql_string(value) }}{{ ", " if not loop.last }}{% endfor -%}
        {%- if not values %}null{% endif -%}
    )
{%- endmacro %}


{#- The section label of a `group by grouping sets (..., (keys))` row: `ALL`
    on the rolled-up row, the section itself otherwise. -#}
{% macro section_label(column='collection_section') -%}
    case when grouping({{ column }}) = 1 then 'ALL' else {{ column }} end
{%- endmacro %}


{#- A relation with these typed columns and no rows, for a union over a
    configuration list that is empty: `columns` maps a name to a SQL type. -#}
{% macro empty_relation(columns) -%}
    select
        {%- for name, type in columns.items() %}
        null::{{ type }} as {{ name }}{{ "," if not loop.last }}
        {%- endfor %}
    where false
{%- endmacro %}


{#- The section label of products that have none (stg_catalog__products). -#}
{% macro missing_section_label() -%}
    {{ return('unknown') }}
{%- endmacro %}


{#- Section values the marts use for their own rows: the overall row, the
    products without a section and the small sections folded together. A
    catalog section (or the first segment of a path) of one of these names is
    renamed in staging so that it stays apart. -#}
{% macro reserved_section_names() -%}
    {{ return(['ALL', missing_section_label(), folded_section_label()]) }}
{%- endmacro %}
