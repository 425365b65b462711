{{ config(enabled=family_enabled('history') and family_enabled('retrieval')) }}
{#- The products a change moved: every query ranked both in the pinned
    baseline run and in the latest run of fct_rank_history (same pair,
    direction and product), with its positive's rank before and after. A
    rank beyond the run's max(K) is null and counts as max(K) + 1, the best
    it could be, so rank_change (before - after: positive when the product
    got better) never overstates a move past the cut-off. Empty until a
    baseline is pinned and a later run has ranked the same products. -#}

with

history as (
    select * from {{ ref('fct_rank_history') }}
),

pinned as (
    select run_id from {{ ref('stg_runs__baseline') }}
),

latest as (
    select run_id
    from history
    order by run_started_at desc, run_id desc
    limit 1
),

before as (
    select history.*
    from history
    inner join pinned on history.run_id = pinned.run_id
),

after as (
    select history.*
    from history
    inner join latest on history.run_id = latest.run_id
),

compared as (
    select
        after.pair,
        after.direction,
        after.product_id,
        after.collection_section,
        before.run_id as baseline_run_id,
        after.run_id,
        before.query_space as baseline_query_space,
        after.query_space,
        before.gallery_space as baseline_gallery_space,
        after.gallery_space,
        before.positive_rank as rank_before,
        after.positive_rank as rank_after,
        before.max_k as max_k_before,
        after.max_k as max_k_after,
        before.positive_distance as distance_before,
        after.positive_distance as distance_after,
        coalesce(before.positive_rank, before.max_k + 1)
        - coalesce(after.positive_rank, after.max_k + 1) as rank_change
    from after
    inner join before
        on
            after.pair = before.pair
            and after.direction = before.direction
            and after.product_id = before.product_id
    where before.run_id <> after.run_id
),

final as (
    select
        *,
        case
            when rank_change > 0 then 'better'
            when rank_change < 0 then 'worse'
            else 'unchanged'
        end as move,
        row_number() over (
            partition by pair, direction
            order by rank_change desc, product_id asc
        )::integer as improvement_order,
        row_number() over (
            partition by pair, direction
            order by rank_change asc, product_id asc
        )::integer as regression_order
    from compared
)

select * from final
