{{ config(materialized='incremental', unique_key=['run_id', 'family', 'pair', 'direction', 'section', 'metric']) }}

{#- Every figure of every run, appended: the retrieval and gap marts stamped
    with the dbt invocation, so a BI tool can chart a metric over time and
    compare a change against the run before it. -#}

with

retrieval as (
    select * from {{ ref('fct_retrieval_metrics') }}
),

gaps as (
    select * from {{ ref('fct_embedding_gaps') }}
),

combined as (
    select
        'retrieval' as family,
        pair,
        direction,
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
        section,
        metric,
        value,
        null::float8 as dedup_tolerant_value,
        n,
        ci_low,
        ci_high
    from gaps
),

final as (
    select
        '{{ invocation_id }}'::text as run_id,
        '{{ run_started_at }}'::timestamptz as run_started_at,
        combined.*
    from combined
)

select * from final
