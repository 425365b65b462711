{{ config(enabled=family_enabled('ann_tuning')) }}
-- The recall/latency curve of one tuned gallery or relation, one line per
-- setting, cheapest first: neighbour recall@10 against exact lists, the R@10
-- and MRR bias the setting puts on the retrieval metrics, per-query latency,
-- and which setting `embed-udfs tune` chose for vars.ann_target_recall.
-- Render it for psql with
--   dbt compile --select ann_tuning_curve --vars '{ann_curve_target: clip/text_to_image}'
-- (a target is pair/direction, or schema.table.column for `tune --relation`;
-- leave the var out to list every target).
with

tuning as (
    select * from {{ ref('fct_ann_tuning') }}
),

curve as (
    select
        target,
        search_param,
        search_value,
        iterative_scan,
        round(neighbour_recall_at_10::numeric, 4) as recall_at_10,
        round(neighbour_recall_at_depth::numeric, 4) as recall_at_depth,
        list_depth,
        round(recall_at_10_bias::numeric, 4) as r_at_10_bias,
        round(mrr_bias::numeric, 4) as mrr_bias,
        round(latency_p50_ms::numeric, 3) as p50_ms,
        round(latency_p95_ms::numeric, 3) as p95_ms,
        round((exact_latency_p50_ms / nullif(latency_p50_ms, 0))::numeric, 1) as speedup_vs_exact,
        case when is_chosen then '<- chosen' when meets_target then 'meets target' end as verdict
    from tuning
    {%- if var('ann_curve_target', none) %}
    where target = {{ sql_string(var('ann_curve_target')) }}
    {%- endif %}
)

select * from curve
order by target, search_param = 'exact', search_param, iterative_scan, search_value
