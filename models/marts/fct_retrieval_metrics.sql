{#- Recall@K and MRR@max(K) per pair, direction and section (and ALL), in
    tidy form: one row per metric, each with n, hits and a 95% interval
    (Wilson for recall, normal approximation for MRR). Beside each strict
    figure, its dedup-tolerant twin (a duplicate of the positive counts as a
    hit; fct_retrieval_ranks.dedup_tolerant_rank) and the share of strict
    misses that were such duplicate hits. -#}
{%- set k_values = var('eval_k_values') | sort %}
{%- set max_k = max_k() %}

with

ranks as (
    select * from {{ ref('fct_retrieval_ranks') }}
),

aggregated as (
    select
        pair,
        direction,
        query_space,
        gallery_space,
        case when grouping(collection_section) = 1 then 'ALL' else collection_section end as section,
        count(*) as n,
        {%- for k in k_values %}
            count(*) filter (where positive_rank <= {{ k }}) as hits_at_{{ k }},
        {%- endfor %}
        avg(coalesce(1.0 / positive_rank, 0)) as mrr,
        stddev_samp(coalesce(1.0 / positive_rank, 0)) as mrr_stddev,
        {%- for k in k_values %}
            count(*) filter (where dedup_tolerant_rank <= {{ k }}) as tolerant_hits_at_{{ k }},
        {%- endfor %}
        avg(coalesce(1.0 / dedup_tolerant_rank, 0)) as tolerant_mrr,
        stddev_samp(coalesce(1.0 / dedup_tolerant_rank, 0)) as tolerant_mrr_stddev
    from ranks
    group by grouping sets (
        (pair, direction, query_space, gallery_space, collection_section),
        (pair, direction, query_space, gallery_space)
    )
),

tidy as (
    select
        aggregated.pair,
        aggregated.direction,
        aggregated.query_space,
        aggregated.gallery_space,
        aggregated.section,
        metrics.metric,
        metrics.k,
        metrics.value,
        aggregated.n,
        metrics.hits,
        metrics.ci_low,
        metrics.ci_high,
        metrics.interval_method,
        metrics.dedup_tolerant_value,
        metrics.dedup_tolerant_hits,
        metrics.dedup_tolerant_ci_low,
        metrics.dedup_tolerant_ci_high,
        (metrics.dedup_tolerant_hits - metrics.hits)::float8
        / nullif(aggregated.n - metrics.hits, 0) as duplicate_miss_share
    from aggregated
    cross join lateral (
        values
        {%- for k in k_values %}
            (
                'recall_at_{{ k }}',
                {{ k }},
                aggregated.hits_at_{{ k }}::float8 / aggregated.n,
                aggregated.hits_at_{{ k }},
                {{ wilson_bound('aggregated.hits_at_' ~ k, 'aggregated.n', 'low') }},
                {{ wilson_bound('aggregated.hits_at_' ~ k, 'aggregated.n', 'high') }},
                'wilson',
                aggregated.tolerant_hits_at_{{ k }}::float8 / aggregated.n,
                aggregated.tolerant_hits_at_{{ k }},
                {{ wilson_bound('aggregated.tolerant_hits_at_' ~ k, 'aggregated.n', 'low') }},
                {{ wilson_bound('aggregated.tolerant_hits_at_' ~ k, 'aggregated.n', 'high') }}
            ),
        {%- endfor %}
        (
            'mrr_at_{{ max_k }}',
            {{ max_k }},
            aggregated.mrr::float8,
            null::bigint,
            greatest(0, {{ mean_ci_bound('aggregated.mrr', 'aggregated.mrr_stddev', 'aggregated.n', 'low') }}),
            least(1, {{ mean_ci_bound('aggregated.mrr', 'aggregated.mrr_stddev', 'aggregated.n', 'high') }}),
            'normal',
            aggregated.tolerant_mrr::float8,
            null::bigint,
            greatest(
                0, {{ mean_ci_bound('aggregated.tolerant_mrr', 'aggregated.tolerant_mrr_stddev', 'aggregated.n', 'low') }}
            ),
            least(
                1, {{ mean_ci_bound('aggregated.tolerant_mrr', 'aggregated.tolerant_mrr_stddev', 'aggregated.n', 'high') }}
            )
        )
    ) as metrics (
        metric, k, value, hits, ci_low, ci_high, interval_method,
        dedup_tolerant_value, dedup_tolerant_hits, dedup_tolerant_ci_low, dedup_tolerant_ci_high
    )
),

final as (
    select
        *,
        now() as computed_at
    from tidy
)

select * from final
