{#- Fails (or warns) for every metric row below a threshold of the given
    severity in the thresholds seed. The model needs metric, value, section
    and n columns, and the column the seed's `pair` names (`subject_column`:
    pair for retrieval and gap marts, space for label metrics); direction
    is matched when the model has one. With `leaf_level_only`, a model that
    reports section levels (section_level) is judged on its leaf sections and
    ALL, so one overall figure fails once, not once per level. -#}
{% test meets_metric_thresholds(
    model, thresholds, severity_level, has_direction=true, subject_column='pair', leaf_level_only=false
) %}

with

thresholds as (
    select * from {{ thresholds }}
    where effective_severity = {{ sql_string(severity_level) }}
),

metrics as (
    select * from {{ model }}
    {%- if leaf_level_only %}
    where section_level = 'leaf'
    {%- endif %}
),

below as (
    select
        metrics.{{ adapter.quote(subject_column) }} as pair,
        {{ "metrics.direction" if has_direction else "'*'" }} as direction,
        metrics.section,
        metrics.metric,
        metrics.value,
        thresholds.min_value,
        metrics.n
    from metrics
    inner join thresholds
        on metrics.metric = thresholds.metric
        and thresholds.pair in ('*', metrics.{{ adapter.quote(subject_column) }})
        and thresholds.section in ('*', metrics.section)
        {%- if has_direction %}
        and thresholds.direction in ('*', metrics.direction)
        {%- endif %}
    where metrics.value < thresholds.min_value or metrics.value is null
)

select * from below

{% endtest %}
