{{ config(enabled=family_enabled('retrieval')) }}
-- The weakest sections per pair and direction by Recall@10, with n and the
-- Wilson interval, so that a small section's low figure is read with its
-- uncertainty. `dbt compile --select weakest_sections` renders it for psql.
with

metrics as (
    select * from {{ ref('fct_retrieval_metrics') }}
),

ranked as (
    select
        pair,
        direction,
        section,
        value as recall_at_10,
        n,
        ci_low,
        ci_high,
        row_number() over (partition by pair, direction order by value asc, n desc) as weakness_rank
    from metrics
    where metric = 'recall_at_10' and section <> 'ALL'
)

select * from ranked
where weakness_rank <= 5
order by pair, direction, weakness_rank
