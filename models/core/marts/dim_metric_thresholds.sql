{#- The thresholds in force for this run: the seed's rows with the severity
    each one is enforced at. A row of scope `demo` was set for the demo
    catalog: there it keeps its severity; on any other catalog an `error`
    row only warns, until the user sets floors of their own (scope `any`). -#}
with

thresholds as (
    select * from {{ ref('metric_thresholds') }}
),

origin as (
    select * from {{ ref('stg_catalog__origin') }}
),

final as (
    select
        thresholds.metric,
        thresholds.pair,
        thresholds.direction,
        thresholds.section,
        thresholds.min_value,
        thresholds.severity,
        coalesce(thresholds.scope, 'any') as scope,
        case
            when coalesce(thresholds.scope, 'any') = 'demo' and not origin.is_demo_catalog
                then 'warn'
            else thresholds.severity
        end as effective_severity,
        coalesce(thresholds.scope, 'any') = 'demo'
        and not origin.is_demo_catalog
        and thresholds.severity = 'error' as is_relaxed,
        thresholds.fail_if_worse_than_baseline
    from thresholds
    cross join origin
)

select * from final
