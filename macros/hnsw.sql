{#- pre_hook: the HNSW candidate list for this model's transaction. An HNSW
    scan returns at most ef_search rows, so it must cover the largest K
    (embed_udfs.config holds vars.hnsw_ef_search to that). A model searching
    one direction's galleries passes it (text_to_image or image_to_text) and
    its gallery scope (sample or catalog), and gets the tuned value (macro
    ann_ef_search_used). -#}
{% macro set_ef_search(direction=none, scope='sample') -%}
    {%- set ef = var('hnsw_ef_search') | int -%}
    set local hnsw.ef_search = {{ ann_ef_search_used(direction, scope) if direction else ef }};

{%- endmacro %}


{#- post_hook for a table of (space, embedding) rows: store vectors inline
    (scans otherwise detoast every row of 512-d and wider vectors, 2x slower) and
    build one partial HNSW cosine index per space, on the vector cast to the
    space's dimension. dbt's `indexes` config has no operator class field.
    Idempotent, so incremental models run it after every build: the rewrite and
    each index happen once, and later rows join the index as they are inserted. -#}
{% macro index_vectors_by_space(relation, spaces) -%}
    {{ store_vectors_inline(relation) }}
    {%- for name in spaces %}
    {{ create_space_index(relation, embedding_space(name)) }}
    {%- endfor %}
    analyze {{ relation }};
{%- endmacro %}


{#- Keep rows up to 8 KB inline, then rewrite so the existing rows move inline
    too (the type change resets the column's storage to the type's). Skipped
    when the column is already stored plain (an incremental model's later
    builds). -#}
{% macro store_vectors_inline(relation) -%}
    do $$
    begin
        if (
            select attstorage from pg_attribute
            where attrelid = {{ sql_string(relation | string) }}::regclass and attname = 'embedding'
        ) <> 'p' then
            alter table {{ relation }} set (toast_tuple_target = 8160);
            alter table {{ relation }} alter column embedding type vector using embedding::real[]::vector;
            alter table {{ relation }} alter column embedding set storage plain;
        end if;
    end
    $$;
{%- endmacro %}


{#- A partial HNSW cosine index on `relation` for one space (a space dict of
    vars.embed_spaces), unless the relation has one already. -#}
{% macro create_space_index(relation, space) -%}
    do $$
    begin
        if {{ space_index_missing(relation, space) }} then
            {{ space_index(relation, space) }};
        end if;
    end
    $$;
{%- endmacro %}


{#- SQL: whether `relation` lacks its partial index for `space`. -#}
{% macro space_index_missing(relation, space) -%}
    not exists (
        select 1 from pg_index
        where indrelid = {{ sql_string(relation | string) }}::regclass
            and pg_get_expr(indpred, indrelid) = format('(space = %L::text)', {{ sql_string(space.name) }})
    )
{%- endmacro %}


{#- The partial HNSW cosine index of one space, on the vector cast to its dimension. -#}
{% macro space_index(relation, space) -%}
    create index on {{ relation }} using hnsw ((embedding::vector({{ space.dim }})) vector_cosine_ops)
        where space = {{ sql_string(space.name) }}
{%- endmacro %}


{#- Whether neighbour lists come from every gallery item (exact) or the
    HNSW index. retrieval_search: auto is exact, never optimistic, while the
    sample actually drawn (intermediate.int_eval_sample) is at most
    exact_search_max_gallery products (and at most `cap`, where a caller's
    exact path costs more than the retrieval lists' blocked search); hnsw
    beyond. -#}
{% macro exact_search(cap=none) %}
    {%- set mode = var('retrieval_search') -%}
    {%- if mode not in ('auto', 'hnsw', 'exact') -%}
        {{ exceptions.raise_compiler_error(
            "vars.retrieval_search is '" ~ mode ~ "'; use auto, hnsw or exact."
        ) }}
    {%- endif -%}
    {%- if mode == 'auto' -%}
        {%- set limit = var('exact_search_max_gallery') | int -%}
        {{ return(drawn_sample_size() <= ([limit, cap] | min if cap else limit)) }}
    {%- endif -%}
    {{ return(mode == 'exact') }}
{% endmacro %}


{#- The number of products in the eval sample as drawn, counted when a model
    runs (one count(*) of a table of at most eval_sample_size rows, a few ms):
    a catalog smaller than vars.eval_sample_size draws fewer. At parse time, or
    before the sample exists, the configured size stands in. The relation is
    looked up rather than ref'd, so that models deciding their search path do
    not gain a dependency on the sample. -#}
{% macro drawn_sample_size() %}
    {%- set configured = var('eval_sample_size') | int -%}
    {%- if not execute -%}
        {{ return(configured) }}
    {%- endif -%}
    {%- set sample = adapter.get_relation(
        database=target.database,
        schema=generate_schema_name('intermediate', none),
        identifier='int_eval_sample') -%}
    {%- if sample is none -%}
        {{ return(configured) }}
    {%- endif -%}
    {%- set counted = run_query('select count(*) from ' ~ sample) -%}
    {{ return(counted.columns[0].values()[0] | int) }}
{% endmacro %}
