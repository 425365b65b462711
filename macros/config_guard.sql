{#- on-run-start: dbt reads the vars that embed_udfs validated, and checks only
    that they are those. Every dbt run started by embed-udfs carries
    vars.config_digest = {md5, vars}: the md5 of the named vars as JSON with
    sorted keys (an absent var is null), computed by embed_udfs.config when it
    validated them. A var changed since then (an edited dbt_project.yml, another
    --vars) gives another md5 and is refused. `dbt build` run directly carries
    no digest: it runs, with a notice that nothing validated the vars. -#}
{% macro config_guard() %}
    {%- if execute -%}
        {%- set stamp = var('config_digest', none) -%}
        {%- if stamp is none -%}
            {#- installed as a package, a run of the other project's models hears nothing -#}
            {%- if pgvector_needed() -%}
                {{ log("embed-metrics: these vars were not validated (dbt was run directly); `embed-udfs check` validates them and the database.", info=true) }}
            {%- endif -%}
        {%- elif config_digest_of(stamp.vars) != stamp.md5 -%}
            {{ exceptions.raise_compiler_error(
                "The vars changed after validation: run `embed-udfs check` to validate them,"
                ~ " then run dbt through embed-udfs (or without vars.config_digest)."
            ) }}
        {%- endif -%}
    {%- endif -%}
    select 'configuration guard passed' as status
{% endmacro %}


{#- The md5 of the named vars as dbt's var() returns them (embed_udfs.config.digest_of). -#}
{% macro config_digest_of(names) %}
    {%- set values = {} -%}
    {%- for name in names -%}
        {%- do values.update({name: var(name, none)}) -%}
    {%- endfor -%}
    {{ return(local_md5(tojson(values, sort_keys=true))) }}
{% endmacro %}


{#- `dbt run-operation print_config_digest --args '{names: [...]}'`: the md5 the
    guard computes for the project's vars (with --vars on top). -#}
{% macro print_config_digest(names) %}
    {{ print("config digest: " ~ config_digest_of(names)) }}
{% endmacro %}
