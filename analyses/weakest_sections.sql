{{ config(enabled=family_enabled('retrieval')) }}
-- The weakest sections per pair, direction and section level at Recall@10,
-- on evidence: the mart's weakness_rank (sections below ALL after Holm's
-- correction first, then by the adjusted p-value), with n, the cluster
-- bootstrap interval, the independent-query one and the evidence, so that a
-- small section's low figure is read with its uncertainty (sections under
-- vars.section_min_queries queries are folded into `other`).
-- `dbt compile --select weakest_sections` renders it for psql.
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
        n_clusters,
        ci_low,
        ci_high,
        ci_low_independent,
        ci_high_independent,
        weaker_p_holm,
        evidence,
        weakness_rank
    from metrics
    where metric = 'recall_at_10' and section <> 'ALL'
)

select * from ranked
where weakness_rank <= 5
order by pair, direction, section_level, weakness_rank
