{{ config(enabled=family_enabled('retrieval')) }}
-- The weakest sections per pair, direction and section level by Recall@10,
-- with n and the Wilson interval, so that a small section's low figure is
-- read with its uncertainty (sections under vars.section_min_queries queries
-- are folded into `other`). `dbt compile --select weakest_sections` renders
-- it for psql.
with

metrics as (
    select * from {{ ref('fct_retrieval_metrics') }}
),

ranked as (
    select
        pair,
        direction,
        section_level,
        section,
        value as recall_at_10,
        n,
        ci_low,
        ci_high,
        row_number() over (
            partition by pair, direction, section_level order by value asc, n desc
        ) as weakness_rank
    from metrics
    where metric = 'recall_at_10' and section <> 'ALL'
)

select * from ranked
where weakness_rank <= 5
order by pair, direction, section_level, weakness_rank
