{#- Every retrieval metric per pair, direction and section (and ALL), in
    tidy form: the per-query scores of fct_retrieval_scores averaged by the
    one aggregator (macro summarise_scores), each row with n, hits (0/1
    scores) and a 95% interval (Wilson for recall, normal approximation for
    means), beside its dedup-tolerant twin. -#}

with

summary as (
    {{- summarise_scores(ref('fct_retrieval_scores'), ['pair', 'direction', 'query_space', 'gallery_space']) }}
),

final as (
    select
        *,
        now() as computed_at
    from summary
)

select * from final
