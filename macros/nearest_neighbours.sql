{#- For each row of `queries` (columns product_id, collection_section,
    query_embedding, a vector of the gallery space's dimension, and the
    `carry` columns, passed through), its top `depth` gallery items of
    `gallery_space` in `gallery` (a relation of space, product_id,
    collection_section, embedding rows): neighbour_rank 1..depth by cosine
    distance, then neighbour_product_id. The depth is neighbour_depth(pair,
    direction): max(K), or vars.rerank_candidates for a pair and direction
    that a reranker rescores; ranks stay cut at max(K).

    exact: macro exact_neighbours (macros/exact_search.sql), every query
    against every gallery item of the space, a block of gallery vectors at a
    time, keeping the pairs within a per-query bound and sorting those. A
    query whose product has no vector in the gallery space gets no list (it
    has no positive to rank).
    Hard precondition: both spaces' vectors are unit length (store
    normalises what it writes, int_vectors_validated rejects norms off 1).
    The search orders by negative inner product `<#>`, which for unit
    vectors is the cosine order without two norms per pair; the listed
    distance is then `<=>`, the operator fct_retrieval_ranks uses for the
    positive, so an item exactly as far as the positive (an identical
    vector, the positive itself) is never counted strictly closer. The two
    operators round differently in float32: two items within about 1e-7 of
    each other can swap, as against a float64 computation (bench/RESULTS.md).

    hnsw: one lateral scan of the space's partial HNSW index per query; the
    index returns at most hnsw.ef_search items (the set_ef_search pre_hook
    keeps it at or above max(K)) and may miss a true neighbour, which makes
    ranks counted from the list optimistic. `gallery` must be the indexed
    relation itself, not a CTE, for the planner to use the index. In a dbt
    unit test (no hooks, fixtures as CTEs) exact is the same lateral scan
    with a full sort by (distance, neighbour_product_id).

    exact: true or false to choose the path (the whole-catalog gallery
    decides its own, macro catalog_search_method); none: exact_search(). -#}
{% macro nearest_neighbours(queries, gallery, gallery_space, carry=[], depth=none, exact=none) %}
{%- set dim = gallery_space.dim %}
{%- set depth = depth or max_k() %}
{%- set exact = exact_search() if exact is none else exact %}
{#- a dbt unit test runs no hooks and reads fixtures as CTEs: it gets the
    plain per-query sort below, the same list on its few rows #}
{%- if exact and model.resource_type != 'unit_test' %}
{%- set gallery_rows = '(select product_id, collection_section, embedding from ' ~ gallery
    ~ ' where space = ' ~ sql_string(gallery_space.name) ~ ')' %}
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
            items.embedding::vector({{ dim }}) <=> queries.query_embedding as distance
        from (
            {{- exact_neighbours(
                '(select product_id, collection_section, query_embedding as embedding from ' ~ queries ~ ')',
                gallery_rows, dim, depth) | indent(12) }}
        ) as exact
        inner join {{ queries }} as queries on exact.query_product_id = queries.product_id
        inner join {{ gallery }} as items
            on
                exact.neighbour_product_id = items.product_id
                and items.space = {{ sql_string(gallery_space.name) }}
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
            {%- if exact %}
            order by distance, neighbour_product_id
            {%- else %}
            order by items.embedding::vector({{ dim }}) <=> queries.query_embedding
            {%- endif %}
            limit {{ depth }}
        ) as listed
    ) as nearest
{%- endif %}
{% endmacro %}


{#- pre_hook of the models that search, for one direction (text_to_image or
    image_to_text): hnsw.ef_search for the index path (the tuned one when
    `embed-udfs tune` measured it);
    on the exact path, exact_search_settings (memory for the sort of the
    pairs within each query's bound: about 400 pairs a query at most, some
    50 bytes each, so 1 GB covers 50,000 queries without spilling; the
    search runs in the leader: CTE scans are not parallel). -#}
{% macro retrieval_search_settings(direction) -%}
    {{ set_ef_search(direction) }}
    {%- if exact_search() %}
    {{ exact_search_settings(workers=0, work_mem='1GB') }}
    {%- endif %}
{%- endmacro %}


{#- The neighbour lists of int_text_to_image_neighbours and
    int_image_to_text_neighbours (direction: text_to_image or image_to_text):
    for every pair, the CTEs queries_<i> (the query space's vectors of
    `eval_vectors`, with the ids of the caller's CTE duplicate_sets) and neighbours_<i>
    (each query's top neighbour_depth(pair, direction) gallery items, macro
    nearest_neighbours), then `listed`, their union with the pair's names.
    Each CTE ends with a comma: the caller's next CTE follows.

    catalog: none for the sample's own gallery; for the whole-catalog
    gallery, {'gallery': the catalog's vectors (int_catalog_gallery_vectors),
    'sample_lists': the same direction's sample lists}. Each pair's catalog
    gallery is then searched as catalog_search_method decides, to depth
    max(K); where it is the sample's own gallery (catalog_gallery_is_sample)
    the sample's lists are copied instead of searched again. -#}
{% macro retrieval_neighbour_lists(direction, eval_vectors, catalog=none) %}
{%- set directions = retrieval_directions() | selectattr('direction', 'equalto', direction) | list %}
{% for d in directions %}
    queries_{{ loop.index }} as (
        select
            queries.product_id,
            queries.collection_section,
            queries.embedding::vector({{ d.query.dim }}) as query_embedding,
            duplicate_sets.duplicate_ids
        from {{ eval_vectors }} as queries
        left join duplicate_sets on queries.product_id = duplicate_sets.product_id
        where queries.space = {{ sql_string(d.query.name) }}
    ),

    neighbours_{{ loop.index }} as (
        {%- if catalog is none %}
        {{- nearest_neighbours(
            'queries_' ~ loop.index, eval_vectors, d.gallery, ['duplicate_ids'],
            neighbour_depth(d.pair, d.direction)) }}
        {%- elif catalog_gallery_is_sample(d.gallery.name) %}
        select
            sample_lists.query_product_id,
            sample_lists.collection_section,
            queries_{{ loop.index }}.duplicate_ids,
            sample_lists.neighbour_rank,
            sample_lists.neighbour_product_id,
            sample_lists.neighbour_section,
            sample_lists.distance
        from {{ catalog.sample_lists }} as sample_lists
        inner join queries_{{ loop.index }} on sample_lists.query_product_id = queries_{{ loop.index }}.product_id
        where
            sample_lists.pair = {{ sql_string(d.pair) }}
            and sample_lists.neighbour_rank <= {{ max_k() }}
        {%- else %}
        {{- nearest_neighbours(
            'queries_' ~ loop.index, catalog.gallery, d.gallery, ['duplicate_ids'], max_k(),
            catalog_search_method(d.query.name, d.gallery.name) == 'exact') }}
        {%- endif %}
    ),

{% endfor %}
listed as (
    {%- for d in directions %}
        select
            {{ sql_string(d.pair) }}::text as pair,
            {{ sql_string(d.direction) }}::text as direction,
            {{ sql_string(d.query.name) }}::text as query_space,
            {{ sql_string(d.gallery.name) }}::text as gallery_space,
            *
        from neighbours_{{ loop.index }}
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not directions %}
    {{ empty_listed() }}
    {%- endif %}
),

{% endmacro %}


{#- The `listed` CTE of a model with nothing to search: no rows, its columns
    (`scoped`: led by gallery_scope, as int_tier_retrieval_neighbours). -#}
{% macro empty_listed(scoped=false) -%}
    {%- set columns = {'gallery_scope': 'text'} if scoped else {} -%}
    {%- do columns.update({
        'pair': 'text', 'direction': 'text', 'query_space': 'text', 'gallery_space': 'text',
        'query_product_id': 'text', 'collection_section': 'text', 'duplicate_ids': 'text[]',
        'neighbour_rank': 'bigint', 'neighbour_product_id': 'text', 'neighbour_section': 'text',
        'distance': 'float8'
    }) -%}
    {{ empty_relation(columns) }}
{%- endmacro %}


{#- The end of a neighbour-list model: the `listed` rows of
    retrieval_neighbour_lists with whether each item is the query's positive
    or a duplicate of it (the duplicate_ids each list carries, from the
    model's `duplicate_sets` CTE). A catalog list model (`catalog`) adds its
    lists_state column (`state`, macro catalog_lists_state); `kept`: no rows
    at all, the search planned but never run (the lists in the table stand);
    `scoped`: the lists of several galleries, each row led by its
    gallery_scope (int_tier_retrieval_neighbours). -#}
{% macro labelled_neighbours(catalog=false, state=none, kept=false, scoped=false) %}
final as (
    select
        {%- if scoped %}
        listed.gallery_scope,
        {%- endif %}
        listed.pair,
        listed.direction,
        listed.query_space,
        listed.gallery_space,
        listed.query_product_id,
        listed.collection_section,
        listed.neighbour_rank::integer as neighbour_rank,
        listed.neighbour_product_id,
        listed.neighbour_section,
        listed.distance::float8 as distance,
        listed.neighbour_product_id = listed.query_product_id as is_positive,
        coalesce(listed.neighbour_product_id = any(listed.duplicate_ids), false) as is_duplicate_of_positive
        {%- if catalog %},
        {{ sql_string(state) if state is not none else 'null' }}::text as lists_state
        {%- endif %}
    from listed
    {%- if kept %}
    where false
    {%- endif %}
)

select * from final
{% endmacro %}


{#- The columns of a neighbour list, in the order of int_retrieval_neighbours
    (labelled_neighbours): one select list for every union of lists, each
    column qualified by `alias` where one is given. -#}
{% macro retrieval_list_columns(alias=none) -%}
    {%- set columns = [
        'pair', 'direction', 'query_space', 'gallery_space', 'query_product_id', 'collection_section',
        'neighbour_rank', 'neighbour_product_id', 'neighbour_section', 'distance', 'is_positive',
        'is_duplicate_of_positive',
    ] -%}
    {{ columns | join(', ') if alias is none else alias ~ '.' ~ columns | join(', ' ~ alias ~ '.') }}
{%- endmacro %}
