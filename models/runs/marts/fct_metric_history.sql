{{ config(enabled=family_enabled('history'), materialized='incremental',
    unique_key=['run_id', 'family', 'pair', 'direction', 'gallery_scope', 'section', 'metric'],
    on_schema_change='append_new_columns'
) }}

{#- Every figure of every run, appended: the retrieval, gap and label marts
    stamped with the dbt invocation and the run's configuration hash
    (dim_runs), so a BI tool can chart a metric over time and
    fct_metric_deltas can compare a run against the one before it and the
    pinned baseline. Label metrics put the space in `pair` and the reduction
    (none, pca_<dims>) in `direction`; rerank uplift (value = after - before,
    with its bootstrap interval) puts `pair:reranker` in `pair`. A new
    metric family joins as one more branch of `combined`, in the same
    columns; a family switched off (vars.enable_<family>) has no branch.
    Retrieval figures carry their gallery_scope (sample, catalog) and
    gallery_size; every other family is computed on the sample
    (gallery_scope sample, no gallery size). Rows written before the scope
    existed read as the sample's. -#}

with

-- the leaf sections (the catalog's own) and ALL: the levels above a path's
-- leaf are re-aggregations of the same queries, read from the marts
{% if family_enabled('retrieval') -%}
    retrieval as (
        select * from {{ ref('fct_retrieval_metrics') }}
        where section_level = 'leaf'
    ),

{% endif -%}
{% if family_enabled('gaps') -%}
    gaps as (
        select * from {{ ref('fct_embedding_gaps') }}
        where section_level = 'leaf'
    ),

{% endif -%}
{% if family_enabled('labels') -%}
    labels as (
        select * from {{ ref('fct_label_metrics') }}
    ),

{% endif -%}
{% if family_enabled('rerank') -%}
    uplift as (
        select * from {{ ref('fct_rerank_uplift') }}
    ),

{% endif -%}
runs as (
    select * from {{ ref('dim_runs') }}
    where run_id = '{{ invocation_id }}'
),

{%- set branches = namespace(first=true) %}

combined as (
    {%- if family_enabled('retrieval') %}
        {{ 'union all' if not branches.first }}{%- set branches.first = false %}
        select
            'retrieval' as family,
            pair,
            direction,
            gallery_scope,
            gallery_size::bigint as gallery_size,
            section,
            metric,
            value,
            dedup_tolerant_value,
            n,
            ci_low,
            ci_high
        from retrieval
    {%- endif %}
    {%- if family_enabled('gaps') %}
        {{ 'union all' if not branches.first }}{%- set branches.first = false %}
        select
            'gap' as family,
            pair,
            'both' as direction,
            'sample'::text as gallery_scope,
            null::bigint as gallery_size,
            section,
            metric,
            value,
            null::float8 as dedup_tolerant_value,
            n,
            ci_low,
            ci_high
        from gaps
    {%- endif %}
    {%- if family_enabled('labels') %}
        {{ 'union all' if not branches.first }}{%- set branches.first = false %}
        select
            'label' as family,
            space as pair,
            reduction as direction,
            'sample'::text as gallery_scope,
            null::bigint as gallery_size,
            section,
            metric,
            value,
            null::float8 as dedup_tolerant_value,
            n,
            ci_low,
            ci_high
        from labels
    {%- endif %}
    {%- if family_enabled('rerank') %}
        {{ 'union all' if not branches.first }}{%- set branches.first = false %}
        select
            'rerank_uplift' as family,
            pair || ':' || reranker as pair,
            direction,
            'sample'::text as gallery_scope,
            null::bigint as gallery_size,
            section,
            metric,
            difference as value,
            null::float8 as dedup_tolerant_value,
            n,
            ci_low,
            ci_high
        from uplift
    {%- endif %}
    {%- if branches.first %}
        -- every family is off
        select
            null::text as family,
            null::text as pair,
            null::text as direction,
            null::text as gallery_scope,
            null::bigint as gallery_size,
            null::text as section,
            null::text as metric,
            null::float8 as value,
            null::float8 as dedup_tolerant_value,
            null::bigint as n,
            null::float8 as ci_low,
            null::float8 as ci_high
        where false
    {%- endif %}
),

final as (
    select
        '{{ invocation_id }}'::text as run_id,
        '{{ run_started_at }}'::timestamptz as run_started_at,
        runs.config_hash,
        combined.*
    from combined
    left join runs on true
)

select * from final
