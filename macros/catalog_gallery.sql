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
    tuned yet), and the exact path's memory, whichever each pair takes. Where
    a pair takes the index, sequential scans are off: over a small gallery
    the planner would rather sort every item, and the rows would say hnsw,
    with the index's measured bias, for lists that are exact. -#}
{% macro catalog_search_settings(direction) -%}
    {{ set_ef_search(direction, 'catalog') }}
    {{ exact_search_settings(workers=0, work_mem='1GB') }}
    {%- set directions = retrieval_directions() | selectattr('direction', 'equalto', direction) | list %}
    {%- for d in directions if not catalog_gallery_is_sample(d.gallery.name)
        and catalog_search_method(d.query.name, d.gallery.name) == 'hnsw' %}
    {%- if loop.first %}
    set local enable_seqscan = off;
    {%- endif %}
    {%- endfor %}
{%- endmacro %}


{#- Whether the whole-catalog neighbour lists of one direction can stay as
    they are: nothing they are made of changed since they were searched. Their
    state is one md5 (catalog_lists_state) of
    - how each of the direction's pairs is searched: method, ef_search,
      depth, spaces and dimensions;
    - the catalog gallery of its gallery spaces: row count and latest
      changed_at (int_catalog_gallery_vectors rewrites, and stamps, a row
      whose vector, section or duplicate group changed, and drops one that
      left the gallery, so any change moves one or the other);
    - the sampled queries of its query spaces: ids, sections and vectors;
    - the sampled products' duplicate sets in the catalog.
    None (search again) at parse time, before its inputs exist, with no
    pairs, or where a catalog gallery is the sample's own (its lists are the
    sample's, copied, which costs nothing to redo). A change to the search
    macros themselves is not in the state: after one, build the two models
    with --full-refresh. -#}
{% macro catalog_lists_state(direction) %}
    {%- set directions = retrieval_directions() | selectattr('direction', 'equalto', direction) | list -%}
    {%- set gallery = ref('int_catalog_gallery_vectors') -%}
    {%- set queries = ref('int_eval_vectors') -%}
    {%- set duplicate_sets = ref('int_catalog_duplicate_sets') -%}
    {%- if not execute or not directions -%}
        {{ return(none) }}
    {%- endif -%}
    {%- for relation in (gallery, queries, duplicate_sets) if load_relation(relation) is none -%}
        {{ return(none) }}  {#- not built yet (a compile on a fresh database) #}
    {%- endfor -%}
    {%- set searches = [] -%}
    {%- for d in directions -%}
        {%- if catalog_gallery_is_sample(d.gallery.name) -%}
            {{ return(none) }}
        {%- endif -%}
        {%- do searches.append([
            d.pair, d.query.name, d.query.dim, d.gallery.name, d.gallery.dim,
            catalog_search_method(d.query.name, d.gallery.name),
            ann_ef_search_used(direction, 'catalog'), max_k()] | join(':')) -%}
    {%- endfor -%}
    {%- set state = run_query(
        "select md5(concat_ws('|', " ~ sql_string(searches | join(';'))
        ~ ", (select count(*) || '/' || coalesce(max(changed_at)::text, '') from " ~ gallery
        ~ " where " ~ in_list('space', directions | map(attribute='gallery') | map(attribute='name') | unique | list) ~ ")"
        ~ ", (select md5(coalesce(string_agg(concat_ws(':', space, product_id, collection_section, embedding::text),"
        ~ " ',' order by space, product_id), '')) from " ~ queries
        ~ " where " ~ in_list('space', directions | map(attribute='query') | map(attribute='name') | unique | list) ~ ")"
        ~ ", (select md5(coalesce(string_agg(product_id || ':' || array_to_string(duplicate_ids, ','),"
        ~ " ',' order by product_id), '')) from " ~ duplicate_sets ~ ")))") -%}
    {{ return(state.columns[0].values()[0]) }}
{% endmacro %}


{#- Whether `relation` (a catalog neighbour-list model, being built
    incrementally) already holds the lists of `state`. -#}
{% macro catalog_lists_kept(relation, state) %}
    {%- if state is none or not is_incremental() -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set columns = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- if 'lists_state' not in columns -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query(
        "select 1 from " ~ relation ~ " where lists_state = " ~ sql_string(state) ~ " limit 1") -%}
    {{ return(found.rows | length > 0) }}
{% endmacro %}


{#- pre_hook of the catalog neighbour-list models: unless the lists are kept
    (catalog_lists_kept), every row goes, and the build appends the lists
    searched anew. Rendered after the model, on the same state. -#}
{% macro clear_catalog_lists(relation, direction) -%}
    {{ clear_unkept_lists(relation, catalog_lists_state(direction)) }}
{%- endmacro %}


{#- The same for any list model that keeps its lists while `state` (its
    lists_state) holds: int_tier_retrieval_neighbours. -#}
{% macro clear_unkept_lists(relation, state) -%}
    {%- if is_incremental() and not catalog_lists_kept(relation, state) %}
    delete from {{ relation }};
    {%- endif %}
{%- endmacro %}
