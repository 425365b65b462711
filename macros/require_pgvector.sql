{#- on-run-start: refuse, with the fix, a server that has no recent pgvector. -#}
{% macro require_pgvector(min_version='0.7.0') %}
    {%- if execute -%}
        {%- set found = run_query(
            "select coalesce(installed_version, default_version) from pg_available_extensions where name = 'vector'"
        ) -%}
        {%- if found.rows | length == 0 -%}
            {{ exceptions.raise_compiler_error(
                "The server at " ~ target.host ~ ":" ~ target.port ~ "/" ~ target.dbname
                ~ " has no pgvector extension. Install pgvector " ~ min_version ~ " or newer on it"
                ~ " (https://github.com/pgvector/pgvector#installation), or unset EMBED_UDFS_DSN"
                ~ " and PGHOST so that embed-udfs uses its embedded server, which ships pgvector."
            ) }}
        {%- endif -%}
        {%- set version = found.rows[0][0] -%}
        {%- set have = version.split('.') | map('int') | list -%}
        {%- set need = min_version.split('.') | map('int') | list -%}
        {%- if have < need -%}
            {{ exceptions.raise_compiler_error(
                "pgvector " ~ version ~ " is too old; embed-metrics needs " ~ min_version
                ~ " or newer. Install the new version and run ALTER EXTENSION vector UPDATE."
            ) }}
        {%- endif -%}
    {%- endif -%}
    create extension if not exists vector
{% endmacro %}
