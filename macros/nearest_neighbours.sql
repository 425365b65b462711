{#- For each row of `queries` (columns product_id, collection_section,
    query_embedding, a vector of the gallery space's dimension, and the
    `carry` columns, passed through), its top
    neighbour_depth() gallery items of `gallery_space` in `gallery` (a
    relation of space, product_id, collection_section, embedding rows):
    neighbour_rank 1..depth by cosine distance, then neighbour_product_id.
    The depth is max(K), or vars.rerank_candidates when rerankers need a
    longer list (macro neighbour_depth); ranks stay cut at max(K).

    exact: macro exact_neighbours (macros/exact_search.sql), a walk over
    the gallery a block of heap pages at a time that keeps each query's
    best depth items and drops rows beyond them. It reads the gallery
    space's copy in a temporary table (exact_gallery_table) that the
    model's pre_hook retrieval_search_settings(gallery, direction) builds:
    one space per table, rows stored inline. A query whose product has no vector in the
    gallery space gets no list (it has no positive to rank).
    Hard precondition: both spaces' vectors are unit length (store
    normalises what it writes, int_vectors_validated rejects norms off 1).
    The walk orders by negative inner product `<#>`, which for unit vectors
    is the cosine order without two norms per pair; the listed distance is
    then `<=>`, the operator fct_retrieval_ranks uses for the positive, so
    an item exactly as far as the positive (an identical vector, the
    positive itself) is never counted strictly closer. The two operators
    round differently in float32: two items within about 1e-7 of each other
    can swap, as against a float64 computation (bench/RESULTS.md).

    hnsw: one lateral scan of the space's partial HNSW index per query; the
    index returns at most hnsw.ef_search items (the set_ef_search pre_hook
    keeps it at or above max(K)) and may miss a true neighbour, which makes
    ranks counted from the list optimistic. `gallery` must be the indexed
    relation itself, not a CTE, for the planner to use the index. In a dbt
    unit test (no hooks, fixtures as CTEs) exact is the same lateral scan
    with a full sort by (distance, neighbour_product_id). -#}
{% macro nearest_neighbours(queries, gallery, gallery_space, carry=[]) %}
{%- set dim = gallery_space.dim %}
{#- a dbt unit test runs no hooks and reads fixtures as CTEs: it gets the
    plain per-query sort below, the same list on its few rows #}
{%- if exact_search() and model.resource_type != 'unit_test' %}
{%- set gallery_table = exact_gallery_table(gallery_space) %}
    select
        listed.query_product_id,
        listed.collection_section,
        {%- for column in carry %}
        listed.{{ column }},
        {%- endfor %}
        row_number() over (
            partition by listed.query_product_id order by listed.distance, listed.neighbour_product_id
        ) as neighbour_rank,
        listed.neighbour_product_id,
        listed.neighbour_section,
        listed.distance
    from (
        select
            exact.query_product_id,
            exact.collection_section,
            {%- for column in carry %}
            queries.{{ column }},
            {%- endfor %}
            exact.neighbour_product_id,
            exact.neighbour_section,
            items.embedding <=> queries.query_embedding as distance
        from (
            {{- exact_neighbours(
                '(select product_id, collection_section, query_embedding as embedding from ' ~ queries ~ ')',
                gallery_table, dim, neighbour_depth()) | indent(12) }}
        ) as exact
        inner join {{ queries }} as queries on exact.query_product_id = queries.product_id
        inner join {{ gallery_table }} as items on exact.neighbour_product_id = items.product_id
    ) as listed
{%- else %}
    select
        queries.product_id as query_product_id,
        queries.collection_section,
        {%- for column in carry %}
        queries.{{ column }},
        {%- endfor %}
        nearest.neighbour_rank,
        nearest.neighbour_product_id,
        nearest.neighbour_section,
        nearest.distance
    from {{ queries }} as queries
    cross join lateral (
        select
            listed.*,
            row_number() over (order by listed.distance, listed.neighbour_product_id) as neighbour_rank
        from (
            select
                items.product_id as neighbour_product_id,
                items.collection_section as neighbour_section,
                items.embedding::vector({{ dim }}) <=> queries.query_embedding as distance
            from {{ gallery }} as items
            where items.space = {{ sql_string(gallery_space.name) }}
            {%- if exact_search() %}
            order by distance, neighbour_product_id
            {%- else %}
            order by items.embedding::vector({{ dim }}) <=> queries.query_embedding
            {%- endif %}
            limit {{ neighbour_depth() }}
        ) as listed
    ) as nearest
{%- endif %}
{% endmacro %}


{#- The exact path's copy of one gallery space: a temporary table, dropped
    at the end of the model's transaction. -#}
{% macro exact_gallery_table(space) -%}
    pg_temp.exact_gallery_{{ space.name }}
{%- endmacro %}


{#- pre_hook of the models that search, for one direction (text_to_image or
    image_to_text) of every pair: hnsw.ef_search for the index path; on the
    exact path, exact_search_settings and each gallery space's vectors from
    `gallery` copied into their own temporary table, typed vector(dim) and
    stored inline (toast_tuple_target, STORAGE PLAIN set before the rows
    land), so the walk's page ranges hold that space's rows only and no
    row is detoasted. -#}
{% macro retrieval_search_settings(gallery, direction) -%}
    {{ set_ef_search(direction) }}
    {%- if exact_search() %}
    {#- the walk's per-query scans run in the leader (bench/exact_ranks.py measured it so) #}
    {{ exact_search_settings(workers=0) }}
    {%- for space in retrieval_directions() | selectattr('direction', 'equalto', direction)
        | map(attribute='gallery') | unique(attribute='name') %}
    {%- set table = exact_gallery_table(space) %}
    drop table if exists {{ table }};
    create temporary table {{ table }} (
        product_id text,
        collection_section text,
        embedding vector({{ space.dim }})
    ) with (toast_tuple_target = 8160) on commit drop;
    alter table {{ table }} alter column embedding set storage plain;
    insert into {{ table }}
    select product_id, collection_section, embedding::vector({{ space.dim }})
    from {{ gallery }}
    where space = {{ sql_string(space.name) }};
    analyze {{ table }};
    {%- endfor %}
    {%- endif %}
{%- endmacro %}
