{#- The whole-catalog gallery scope: the eval sample's queries ranked against
    every product with a valid vector in the gallery space (after dedup as the
    sample is), beside the same queries against the sample itself. R@K falls
    as the gallery grows, so every retrieval figure carries its
    gallery_scope (sample, catalog) and gallery_size.

    Rule (docs/evaluation-protocol.md): the sample's gallery is a subset of
    the catalog's and the positive is in both, so with exact search a query's
    catalog rank is never better than its sample rank, and R@K at the
    catalog is never above R@K at the sample. -#}


{#- Products per gallery space, in the sample (intermediate.int_eval_vectors)
    and in the catalog (intermediate.int_catalog_gallery_vectors), counted
    when a model runs: {space: {'sample': n, 'catalog': n}}. At parse time,
    or before both tables exist, an empty dict. The relations are looked up,
    not ref'd, so callers choose their dependencies. -#}
{% macro gallery_sizes() %}
    {%- set sizes = {} -%}
    {%- if not execute -%}
        {{ return(sizes) }}
    {%- endif -%}
    {%- set schema = generate_schema_name('intermediate', none) -%}
    {%- set sample = adapter.get_relation(database=target.database, schema=schema, identifier='int_eval_vectors') -%}
    {%- set catalog = adapter.get_relation(
        database=target.database, schema=schema, identifier='int_catalog_gallery_vectors') -%}
    {%- if sample is none or catalog is none -%}
        {{ return(sizes) }}
    {%- endif -%}
    {%- set counted = run_query(
        "select space, 'sample' as scope, count(*) as n from " ~ sample ~ " group by space"
        ~ " union all select space, 'catalog', count(*) from " ~ catalog ~ " group by space") -%}
    {%- for row in counted.rows -%}
        {%- do sizes.setdefault(row[0], {}).update({row[1]: row[2] | int}) -%}
    {%- endfor -%}
    {{ return(sizes) }}
{% endmacro %}


{#- Whether the catalog gallery of `gallery_space` (a space name) is the
    sample's own gallery: the same number of products, and the sample's
    gallery is a subset of the catalog's, so the same set. Its lists are then
    the sample's, copied rather than searched twice, and its rows say so
    (gallery_is_sample). Unknown sizes (parse time) count as different. -#}
{% macro catalog_gallery_is_sample(gallery_space) %}
    {%- set sizes = gallery_sizes().get(gallery_space, {}) -%}
    {{ return(sizes.get('sample') is not none and sizes.get('sample') == sizes.get('catalog')) }}
{% endmacro %}


{#- How the catalog gallery of `gallery_space` is searched: exact (the
    blocked scan of macros/exact_search.sql) or hnsw (the gallery's own
    partial index). vars.retrieval_search exact or hnsw decides outright; auto
    is exact while queries x catalog gallery products stays within
    vars.catalog_exact_max_pairs (the exact cost is that many inner products),
    hnsw beyond. -#}
{% macro catalog_search_method(query_space, gallery_space) %}
    {%- set mode = var('retrieval_search') -%}
    {%- if mode in ('exact', 'hnsw') -%}
        {{ return(mode) }}
    {%- endif -%}
    {%- set sizes = gallery_sizes() -%}
    {%- set queries = sizes.get(query_space, {}).get('sample', var('eval_sample_size') | int) -%}
    {%- set gallery = sizes.get(gallery_space, {}).get('catalog', var('eval_sample_size') | int) -%}
    {{ return('exact' if queries * gallery <= var('catalog_exact_max_pairs') | int else 'hnsw') }}
{% endmacro %}


{#- post_hook of int_catalog_gallery_vectors: vectors inline (exact scans
    otherwise detoast every row), and a partial HNSW cosine index per space
    only where the catalog search will use it (catalog_search_method at the
    sizes just built), since the index over a large catalog is costly to
    build. The decision is made in SQL, as the hook is rendered before the
    table exists. Idempotent: an incremental build keeps the vectors and the
    index it has. -#}
{% macro index_catalog_gallery(relation, spaces) -%}
    {{ store_vectors_inline(relation) }}
    {%- set mode = var('retrieval_search') %}
    {%- for name in spaces %}
    {%- set space = embedding_space(name) %}
    do $$
    begin
        if {{ 'true' if mode == 'hnsw' else 'false' if mode == 'exact' else
            '(select count(*) from ' ~ relation ~ ' where space = ' ~ sql_string(space.name) ~ ')::numeric * '
            ~ var('eval_sample_size') | int ~ ' > ' ~ var('catalog_exact_max_pairs') | int }}
            and {{ space_index_missing(relation, space) }} then
            {{ space_index(relation, space) }};
        end if;
    end
    $$;
    {%- endfor %}
    analyze {{ relation }};
{%- endmacro %}


{#- pre_hook of the catalog neighbour models: the hnsw.ef_search tuned on the
    catalog's own indexes for the index path (the sample's where those are not
    tuned yet), and the exact path's memory, whichever each pair takes. -#}
{% macro catalog_search_settings(direction) -%}
    {{ set_ef_search(direction, 'catalog') }}
    {{ exact_search_settings(workers=0, work_mem='1GB') }}
{%- endmacro %}
