{{ config(enabled=family_enabled('ann_tuning')) }}
{#- The recall/latency curve of every tuned ANN index, one row per setting,
    with the cheapest setting that meets vars.ann_target_recall marked. -#}

with

tuning as (
    select * from {{ ref('stg_ann__tuning') }}
),

-- one row per (target, setting): the curve's point
points as (
    select
        target_kind,
        target,
        pair,
        direction,
        query_space,
        gallery_space,
        relation_name,
        column_name,
        index_name,
        index_method,
        operator_class,
        index_options,
        gallery_rows,
        queries,
        search_param,
        search_value,
        iterative_scan,
        consistency_note,
        max(k) filter (where metric = 'neighbour_recall') as list_depth,
        max(value) filter (where metric = 'neighbour_recall' and k = 10) as neighbour_recall_at_10,
        max(value) filter (where metric = 'neighbour_recall') as neighbour_recall_at_depth,
        max(bias) filter (where metric = 'recall' and k = 10) as recall_at_10_bias,
        max(k) filter (where metric = 'mrr') as mrr_k,
        max(bias) filter (where metric = 'mrr') as mrr_bias,
        max(value) filter (where metric = 'latency_p50_ms') as latency_p50_ms,
        max(value) filter (where metric = 'latency_p95_ms') as latency_p95_ms,
        max(exact_value) filter (where metric = 'latency_p50_ms') as exact_latency_p50_ms,
        max(tuned_at) as tuned_at
    from tuning
    group by
        target_kind, target, pair, direction, query_space, gallery_space, relation_name,
        column_name, index_name, index_method, operator_class, index_options, gallery_rows,
        queries, search_param, search_value, iterative_scan, consistency_note
),

judged as (
    select
        *,
        search_param <> 'exact'
        and neighbour_recall_at_10 >= {{ var('ann_target_recall') }} as meets_target
    from points
),

cheapest as (
    select
        target,
        search_param,
        iterative_scan,
        min(search_value) filter (where meets_target) as chosen_value
    from judged
    group by target, search_param, iterative_scan
),

final as (
    select
        judged.target_kind,
        judged.target,
        judged.pair,
        judged.direction,
        judged.query_space,
        judged.gallery_space,
        judged.relation_name,
        judged.column_name,
        judged.index_name,
        judged.index_method,
        judged.operator_class,
        judged.index_options,
        judged.gallery_rows,
        judged.queries,
        judged.search_param,
        judged.search_value,
        judged.iterative_scan,
        judged.list_depth,
        judged.neighbour_recall_at_10,
        judged.neighbour_recall_at_depth,
        judged.recall_at_10_bias,
        judged.mrr_k,
        judged.mrr_bias,
        judged.latency_p50_ms,
        judged.latency_p95_ms,
        judged.exact_latency_p50_ms,
        {{ var('ann_target_recall') }}::float8 as target_recall,
        coalesce(judged.meets_target, false) as meets_target,
        coalesce(judged.search_value = cheapest.chosen_value, false) as is_chosen,
        judged.consistency_note,
        judged.tuned_at
    from judged
    inner join cheapest
        on
            judged.target = cheapest.target
            and judged.search_param = cheapest.search_param
            and judged.iterative_scan = cheapest.iterative_scan
)

select * from final
