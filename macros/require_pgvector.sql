{#- on-run-start: refuse, with the fix, a database whose pgvector is missing or
    too old for what is configured (docs/own-postgres.md has the table):
      0.7.0  everything (halfvec and real[] casts, l2_normalize, HNSW)
      0.8.0  ANN tuning with vars.ann_iterative_scans other than off
    Creating the extension needs a superuser (pgvector is not a trusted
    extension): as one, the hook creates it; as an ordinary role it stops and
    names the statement a superuser must run once. Installed as a package,
    the hook does nothing on a run that selects none of the package's
    models, so the installing project's other runs never depend on pgvector. -#}
{% macro require_pgvector(min_version='0.7.0') %}
    {%- if execute and pgvector_needed() -%}
        {%- set found = run_query(
            "select installed_version, default_version,"
            ~ " (select rolsuper from pg_roles where rolname = current_user),"
            ~ " current_database(), current_user"
            ~ " from pg_available_extensions where name = 'vector'"
        ) -%}
        {%- if found.rows | length == 0 -%}
            {{ exceptions.raise_compiler_error(
                "The server at " ~ target.host ~ ":" ~ target.port ~ "/" ~ target.dbname
                ~ " has no pgvector extension. Install pgvector " ~ min_version ~ " or newer on it"
                ~ " (https://github.com/pgvector/pgvector#installation; managed services list it as"
                ~ " 'vector'), then a superuser runs in that database: create extension vector;"
                ~ " Or unset EMBED_UDFS_DSN and PGHOST so that embed-udfs uses its embedded server,"
                ~ " which ships pgvector."
            ) }}
        {%- endif -%}
        {%- set installed, available, superuser, database, role = found.rows[0] -%}
        {%- if installed is none and not superuser -%}
            {{ exceptions.raise_compiler_error(
                "pgvector " ~ available ~ " is available but not created in database " ~ database
                ~ ", and role " ~ role ~ " may not create it (it is not a superuser). A superuser"
                ~ " (on a managed service, its admin role) must run once, connected to " ~ database
                ~ ": create extension vector;  Then run dbt again as " ~ role ~ "."
            ) }}
        {%- endif -%}
        {%- set version = installed or available -%}
        {%- set problem = pgvector_shortfall(version, min_version) -%}
        {%- if problem -%}
            {{ exceptions.raise_compiler_error(problem) }}
        {%- endif -%}
        {%- if installed is none -%}
            create extension if not exists vector
        {%- else -%}
            select 'pgvector {{ version }}' as status
        {%- endif -%}
    {%- else -%}
        select 'pgvector not checked' as status
    {%- endif -%}
{% endmacro %}


{#- What the configuration needs that pgvector `version` lacks, as the message
    to show; an empty string when it has everything. -#}
{% macro pgvector_shortfall(version, min_version='0.7.0') %}
    {%- set have = pgvector_version_tuple(version) -%}
    {%- set fix = " A superuser installs the newer pgvector on the server and runs, in this database:"
        ~ " alter extension vector update;" -%}
    {%- if have < pgvector_version_tuple(min_version) -%}
        {{ return("pgvector " ~ version ~ " is too old; embed-metrics needs " ~ min_version
            ~ " or newer (halfvec and real[] vectors, l2_normalize)." ~ fix) }}
    {%- endif -%}
    {%- set scans = var('ann_iterative_scans', ['off']) or ['off'] -%}
    {%- set iterative = scans | reject('equalto', 'off') | list -%}
    {%- if have < [0, 8, 0] and iterative and family_enabled('ann_tuning') -%}
        {{ return("pgvector " ~ version ~ " has no iterative index scans (0.8.0 or newer), and"
            ~ " vars.ann_iterative_scans asks for " ~ (iterative | join(', '))
            ~ ". Set ann_iterative_scans: [\"off\"], or upgrade:" ~ fix) }}
    {%- endif -%}
    {{ return("") }}
{% endmacro %}


{% macro pgvector_version_tuple(version) %}
    {%- set parts = [] -%}
    {%- for part in (version | string).split('.') -%}
        {%- set digits = modules.re.match('[0-9]*', part).group(0) -%}
        {%- do parts.append(digits | int) -%}
    {%- endfor -%}
    {{ return(parts) }}
{% endmacro %}


{#- Whether this run builds or tests anything of this project: always when it
    is the project being run; installed as a package, only when the run
    selects one of its nodes. -#}
{% macro pgvector_needed() %}
    {%- if is_root_project() -%}
        {{ return(true) }}
    {%- endif -%}
    {%- for unique_id in selected_resources if unique_id.split('.')[1] == 'embed_metrics' -%}
        {{ return(true) }}
    {%- endfor -%}
    {{ return(false) }}
{% endmacro %}
