{#- pre_hook: the HNSW candidate list for this model's transaction. An HNSW
    scan returns at most ef_search rows, so it must cover the largest K
    (embed_udfs.config holds vars.hnsw_ef_search to that). A model searching
    one direction's galleries passes it (text_to_image or image_to_text) and
    gets the tuned value (macro ann_ef_search_used). -#}
{% macro set_ef_search(direction=none) -%}
    {%- set ef = var('hnsw_ef_search') | int -%}
    set local hnsw.ef_search = {{ ann_ef_search_used(direction) if direction else ef }};

{%- endmacro %}


{#- post_hook for a table of (space, embedding) rows: store vectors inline
    (scans otherwise detoast every row of 512-d and wider vectors, 2x slower) and
    build one partial HNSW cosine index per space, on the vector cast to the
    space's dimension. dbt's `indexes` config has no operator class field. -#}
{% macro index_vectors_by_space(relation, spaces) -%}
    -- Keep rows up to 8 KB inline, then rewrite so the existing rows move
    -- inline too (the type change resets the column's storage to the type's).
    alter table {{ relation }} set (toast_tuple_target = 8160);
    alter table {{ relation }} alter column embedding type vector using embedding::real[]::vector;
    alter table {{ relation }} alter column embedding set storage plain;
    {%- for name in spaces %}
    {%- set space = embedding_space(name) %}
    create index on {{ relation }} using hnsw ((embedding::vector({{ space.dim }})) vector_cosine_ops)
        where space = {{ sql_string(space.name) }};
    {%- endfor %}
    analyze {{ relation }};
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
