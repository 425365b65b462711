{#- Reading the user's tables: only the columns the data contract names, under
    the names that vars.products_columns and vars.vectors_columns give them
    (docs/package.md). A contract column mapped to null is read as null. -#}

{#- The user's column for a contract column: vars.<mapping>[name] (the name
    itself when the mapping leaves it out), quoted; `null` where it maps to
    null. -#}
{% macro input_column(mapping, name) -%}
    {%- set given = var(mapping, {}) or {} -%}
    {%- if given is not mapping -%}
        {{ exceptions.raise_compiler_error(
            "vars." ~ mapping ~ " must map contract column names to your column names, e.g. {"
            ~ name ~ ": my_" ~ name ~ "}; it is " ~ (given | string | tojson) ~ "."
        ) }}
    {%- endif -%}
    {%- set column = given.get(name, name) -%}
    {%- if column is none -%}
        null
    {%- elif column is not string or not modules.re.match('^[A-Za-z_][A-Za-z0-9_$]*$', column) -%}
        {{ exceptions.raise_compiler_error(
            "vars." ~ mapping ~ "." ~ name ~ " is " ~ (column | string | tojson)
            ~ "; it must be a column name (letters, digits, underscores) or null."
        ) }}
    {%- else -%}
        {{ adapter.quote(column) }}
    {%- endif -%}
{%- endmacro %}


{#- Whether the vectors relation holds one row per (space, product) with a
    space column (the default), rather than one column per space. -#}
{% macro vectors_have_space_column() -%}
    {{ return(input_column('vectors_columns', 'space') | trim != 'null') }}
{%- endmacro %}


{#- The column holding a space's vectors when the vectors relation has one
    column per space (vars.vectors_columns.space: null): the space's
    vector_column, by default its name. -#}
{% macro space_vector_column(space) -%}
    {%- set column = space.get('vector_column') or space.name -%}
    {%- if column is not string or not modules.re.match('^[A-Za-z_][A-Za-z0-9_$]*$', column) -%}
        {{ exceptions.raise_compiler_error(
            "Space '" ~ space.name ~ "': vector_column is " ~ (column | string | tojson)
            ~ "; it must be a column name of the vectors relation."
        ) }}
    {%- endif -%}
    {{ adapter.quote(column) }}
{%- endmacro %}


{#- A table that an embed-udfs job writes (cluster, rerank, tune, backfill
    errors): its rows where it exists, else no rows in the same columns. A
    dbt project that installs this package and runs none of the jobs has
    none of these tables, and its metrics still build. -#}
{% macro job_output(relation, columns) -%}
    {%- if execute and load_relation(relation) is none -%}
        {{ empty_relation(columns) }}
    {%- else -%}
        select * from {{ relation }}
    {%- endif -%}
{%- endmacro %}
