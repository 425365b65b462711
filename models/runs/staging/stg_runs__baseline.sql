{{ config(enabled=family_enabled('history')) }}
{#- The pinned baseline run (source runs.baseline, written by `embed-udfs
    baseline set`): at most one row. The table appears with the first
    `baseline set`; until then this view has no rows. Every build that
    builds fct_metric_deltas rebuilds this view first, so it reads the table
    as soon as it exists. -#}
{%- set baseline_relation = load_relation(source('runs', 'baseline')) %}

with

{% if baseline_relation is not none -%}
    source as (
        select * from {{ source('runs', 'baseline') }}
    ),
{%- else -%}
    source as (
        {{ empty_relation({'run_id': 'text', 'pinned_at': 'timestamptz'}) }}
    ),
{%- endif %}

final as (
    select
        run_id,
        pinned_at
    from source
)

select * from final
