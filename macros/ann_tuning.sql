{#- The tuned hnsw.ef_search of one search direction (text_to_image or
    image_to_text) against one gallery scope (sample: the eval sample's
    galleries, tune's targets of kind space; catalog: the whole-catalog
    galleries' own indexes, kind catalog): for each of the direction's pairs,
    the smallest ef_search whose neighbour recall@10 met
    vars.ann_target_recall when `embed-udfs tune` measured that pair's gallery
    (embeddings.ann_tuning), and the largest of those over the pairs, since
    one model searches them all with one setting. A pair with no tuned value
    counts as vars.hnsw_ef_search. None when no pair of the direction is
    tuned, or before the table exists. The table is looked up, not ref'd: the
    search models do not wait on it. -#}
{% macro ann_tuned_ef_search(direction, scope='sample') %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set tuning = adapter.get_relation(
        database=target.database,
        schema=var('vectors_relation').split('.')[0],
        identifier='ann_tuning') -%}
    {%- set searched = retrieval_directions() | selectattr('direction', 'equalto', direction) | list -%}
    {%- if tuning is none or not searched -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set keys = [] -%}
    {%- for d in searched -%}
        {%- do keys.append(d.pair ~ '/' ~ d.query.name ~ '/' ~ d.gallery.name) -%}
    {%- endfor -%}
    {%- set found = run_query(
        "select pair, min(search_value) from " ~ tuning
        ~ " where target_kind = " ~ sql_string(ann_target_kind(scope))
        ~ " and direction = " ~ sql_string(direction)
        ~ " and search_param = 'ef_search' and iterative_scan = 'off'"
        ~ " and metric = 'neighbour_recall' and k = 10 and value >= " ~ (var('ann_target_recall') | float)
        ~ " and " ~ in_list("pair || '/' || query_space || '/' || gallery_space", keys)
        ~ " group by pair") -%}
    {%- set tuned = found.columns[1].values() | map('int') | list -%}
    {%- if not tuned -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if tuned | length < searched | length -%}
        {%- do tuned.append(var('hnsw_ef_search') | int) -%}
    {%- endif -%}
    {{ return(tuned | max) }}
{% endmacro %}


{#- hnsw.ef_search for a model searching one direction's galleries through the
    index: the tuned value when there is one, else vars.hnsw_ef_search; never
    below the neighbour lists' depth (an HNSW scan returns at most ef_search
    rows). The catalog scope takes its own indexes' tuned value, else the
    sample's (what it searched with before its indexes were tuned). -#}
{% macro ann_ef_search_used(direction, scope='sample') %}
    {%- set tuned = ann_tuned_ef_search(direction, scope) -%}
    {%- if tuned is none and scope == 'catalog' -%}
        {{ return(ann_ef_search_used(direction)) }}
    {%- endif -%}
    {%- if tuned is none -%}
        {{ return(var('hnsw_ef_search') | int) }}
    {%- endif -%}
    {{ return([tuned, neighbour_depth()] | max) }}
{% endmacro %}


{#- The kind of `embed-udfs tune` target that measures a gallery scope's index. -#}
{% macro ann_target_kind(scope) %}
    {%- set kinds = {'sample': 'space', 'catalog': 'catalog'} -%}
    {%- if scope not in kinds -%}
        {{ exceptions.raise_compiler_error("gallery scope " ~ scope ~ " is not sample or catalog") }}
    {%- endif -%}
    {{ return(kinds[scope]) }}
{% endmacro %}


{#- The distance every retrieval metric uses, as the operator class an HNSW
    index must have to order by it. -#}
{% macro metric_operator_class() %}
    {{ return('vector_cosine_ops') }}
{% endmacro %}


{#- Body of the warn-severity tests tests/ann/assert_tuned_ef_search_*:
    whether the tuned ef_search of one direction still meets
    vars.ann_target_recall on the current eval vectors. For each of the
    direction's pairs, up to vars.ann_tuning_queries queries (the tune job's
    sample rule) search the gallery's HNSW index on int_eval_vectors at the
    tuned ef_search (through the tune job's function ann_index.top_ids, which
    plans its search with sequential scans off: a test's own SELECT is planned
    before it could set that), and their top 10 is compared with the exact top
    10 (a sequential scan: the distance plus 0 is no index's expression). One row
    per pair whose neighbour recall@10 fell below the target: re-run
    `embed-udfs tune`. No rows when the direction is untuned. -#}
{% macro ann_tuned_recall_shortfalls(direction) %}
{%- set ef = ann_tuned_ef_search(direction) %}
{%- set searched = retrieval_directions() | selectattr('direction', 'equalto', direction) | list %}
{%- if ef is none or not searched %}
    {{ empty_relation({'pair': 'text', 'ef_search': 'integer', 'neighbour_recall_at_10': 'float8'}) }}
{%- else %}
with

{% for d in searched %}
queries_{{ loop.index }} as (
    select
        queries.product_id,
        queries.embedding::vector({{ d.gallery.dim }}) as embedding
    from {{ ref('int_eval_vectors') }} as queries
    where
        queries.space = {{ sql_string(d.query.name) }}
        and exists (
            select 1 from {{ ref('int_eval_vectors') }} as positives
            where positives.space = {{ sql_string(d.gallery.name) }} and positives.product_id = queries.product_id
        )
    order by md5(queries.product_id), queries.product_id
    limit {{ var('ann_tuning_queries') | int }}
),

recall_{{ loop.index }} as (
    select
        {{ sql_string(d.pair) }}::text as pair,
        avg(
            cardinality(array(select unnest(found.ids) intersect select unnest(exact.ids)))::float8
            / cardinality(exact.ids)
        ) as neighbour_recall_at_10
    from queries_{{ loop.index }} as queries
    cross join lateral (
        select ann_index.top_ids(
            '{{ ref('int_eval_vectors') }}'::regclass, {{ sql_string(d.gallery.name) }},
            {{ d.gallery.dim }}, queries.embedding, {{ ef }}, 10
        ) as ids
    ) as found
    cross join lateral (
        select array_agg(listed.product_id) as ids
        from (
            select gallery.product_id
            from {{ ref('int_eval_vectors') }} as gallery
            where gallery.space = {{ sql_string(d.gallery.name) }}
            order by (gallery.embedding::vector({{ d.gallery.dim }}) <=> queries.embedding) + 0, gallery.product_id
            limit 10
        ) as listed
    ) as exact
),

{% endfor %}
measured as (
    {%- for d in searched %}
    select * from recall_{{ loop.index }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
)

select
    pair,
    {{ ef }} as ef_search,
    neighbour_recall_at_10
from measured
where neighbour_recall_at_10 < {{ var('ann_target_recall') | float }}
{%- endif %}
{% endmacro %}
