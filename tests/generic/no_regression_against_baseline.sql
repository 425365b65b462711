{#- Fails (or warns) for every metric that got significantly worse than the
    pinned baseline (verdict `worse` in fct_metric_deltas) where a row of the
    thresholds seed of the given severity marks it with
    fail_if_worse_than_baseline. -#}
{% test no_regression_against_baseline(model, thresholds, severity_level) %}

with

thresholds as (
    select * from {{ thresholds }}
    where effective_severity = {{ sql_string(severity_level) }}
        and fail_if_worse_than_baseline
),

deltas as (
    select * from {{ model }}
    where reference = 'baseline' and verdict = 'worse'
),

worse as (
    select
        deltas.pair,
        deltas.direction,
        deltas.section,
        deltas.metric,
        deltas.reference_run_id,
        deltas.reference_value,
        deltas.value,
        deltas.ci_low,
        deltas.ci_high
    from deltas
    inner join thresholds
        on deltas.metric = thresholds.metric
        and thresholds.pair in ('*', deltas.pair)
        and thresholds.section in ('*', deltas.section)
        and thresholds.direction in ('*', deltas.direction)
)

select * from worse

{% endtest %}
