{#- For each row of `queries` (columns product_id, collection_section,
    query_embedding, a vector of the gallery space's dimension, and the
    `carry` columns, passed through), its top
    neighbour_depth() gallery items of `gallery_space` in `gallery` (a
    relation of space, product_id, collection_section, embedding rows):
    neighbour_rank 1..depth by cosine distance, then neighbour_product_id.
    The depth is max(K), or vars.rerank_candidates when rerankers need a
    longer list (macro neighbour_depth); ranks stay cut at max(K).

    exact (macro exact_search): every gallery item is measured, one top-N
    sort per query, queries spread over parallel workers. hnsw: one lateral
    scan of the space's partial HNSW index per query; the index returns at
    most hnsw.ef_search items (the set_ef_search pre_hook keeps it at or
    above max(K)) and may miss a true neighbour, which makes ranks counted
    from the list optimistic. `gallery` must be the indexed relation itself,
    not a CTE, for the planner to use the index. -#}
{% macro nearest_neighbours(queries, gallery, gallery_space, carry=[]) %}
{%- set dim = gallery_space.dim %}
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
{% endmacro %}


{#- pre_hook of the models that search: hnsw.ef_search for the index path;
    on the exact path, index scans off, so that no ordering the HNSW index
    could serve (approximately) replaces the full sort. -#}
{% macro retrieval_search_settings() -%}
    {{ set_ef_search() }}
    {%- if exact_search() %}
    set local enable_indexscan = off;
    {%- endif %}
{%- endmacro %}
