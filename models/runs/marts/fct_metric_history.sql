{{ config(
    materialized='incremental',
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
    columns. Retrieval figures carry their gallery_scope (sample, catalog)
    and gallery_size; every other family is computed on the sample
    (gallery_scope sample, no gallery size). Rows written before the scope
    existed read as the sample's. -#}

with

retrieval as (
    select * from {{ ref('fct_retrieval_metrics') }}
),

gaps as (
    select * from {{ ref('fct_embedding_gaps') }}
),

labels as (
    select * from {{ ref('fct_label_metrics') }}
),

uplift as (
    select * from {{ ref('fct_rerank_uplift') }}
),

runs as (
    select * from {{ ref('dim_runs') }}
    where run_id = '{{ invocation_id }}'
),

combined as (
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

    union all

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

    union all

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

    union all

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
