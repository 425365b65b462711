{{ config(
    enabled=family_enabled('retrieval'),
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='sync_all_columns',
    pre_hook=[
        "{{ exact_search_settings(workers=0, work_mem='1GB') }}",
        "{{ clear_unkept_lists(this, gallery_tiers_state()) }}",
    ],
) }}
{%- set state = gallery_tiers_state() %}
{%- set kept = catalog_lists_kept(this, state) %}
{%- set searches = [] %}
{%- for d in retrieval_directions() %}
    {%- for tier in gallery_tiers(d.query.name, d.gallery.name) %}
        {%- do searches.append({'d': d, 'tier': tier, 'cte': (searches | length) + 1}) %}
    {%- endfor %}
{%- endfor %}

{#- Every eval query's top max(K) neighbours in each gallery between the
    sample and the whole catalog (macro gallery_tiers: gallery_scope
    sample_x<m>, the sample's gallery and a fixed draw of the catalog, about
    m times the sample's size), both directions of every pair, searched
    exactly: R@K against gallery size between its two ends. The columns of
    int_catalog_retrieval_neighbours, with the gallery_scope of each list.

    Incremental, as the whole-catalog lists: kept, with no search, while
    their state (macro gallery_tiers_state: the catalog lists' state and the
    tiers drawn) holds. -#}

with
{#- at parse time (and with no tier) there is nothing to search: the inputs are
    ref'd for the graph, and read only where a tier is searched #}
{%- if not searches %}
-- depends_on: {{ ref('int_catalog_duplicate_sets') }}, {{ ref('int_eval_vectors') }}, {{ ref('int_catalog_gallery_vectors') }}
{%- else %}

duplicate_sets as (
    select * from {{ ref('int_catalog_duplicate_sets') }}
),

queries as (
    select * from {{ ref('int_eval_vectors') }}
),

catalog as (
    select * from {{ ref('int_catalog_gallery_vectors') }}
),
{%- endif %}

{% for search in searches %}
    {%- set d, tier, i = search.d, search.tier, search.cte %}
    queries_{{ i }} as (
        select
            queries.product_id,
            queries.collection_section,
            queries.embedding::vector({{ d.query.dim }}) as query_embedding,
            duplicate_sets.duplicate_ids
        from queries
        left join duplicate_sets on queries.product_id = duplicate_sets.product_id
        where queries.space = {{ sql_string(d.query.name) }}
    ),

    -- {{ tier.scope }}: the sample's gallery and the catalog products the draw takes
    gallery_{{ i }} as (
        select
            catalog.space,
            catalog.product_id,
            catalog.collection_section,
            catalog.embedding
        from catalog
        where
            catalog.space = {{ sql_string(d.gallery.name) }}
            and {{ in_gallery_tier('catalog', tier, d.gallery.name, 'queries') }}
    ),

    neighbours_{{ i }} as (
        {{- nearest_neighbours(
            'queries_' ~ i, 'gallery_' ~ i, d.gallery, ['duplicate_ids'], max_k(), exact=true) }}
    ),

{% endfor %}
listed as (
    {%- for search in searches %}
        {%- set d, tier = search.d, search.tier %}
        select
            {{ sql_string(tier.scope) }}::text as gallery_scope,
            {{ sql_string(d.pair) }}::text as pair,
            {{ sql_string(d.direction) }}::text as direction,
            {{ sql_string(d.query.name) }}::text as query_space,
            {{ sql_string(d.gallery.name) }}::text as gallery_space,
            *
        from neighbours_{{ search.cte }}
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not searches %}
        {{ empty_listed(scoped=true) }}
    {%- endif %}
),

{{ labelled_neighbours(catalog=true, state=state, kept=kept, scoped=true) }}
