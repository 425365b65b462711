{{ config(enabled=family_enabled('rerank')) }}
{#- What reranking changed, per reranker, pair, direction, section (and
    ALL) and metric: the figure before (stage 1) and after (stage 2), the
    paired difference with a 95% percentile interval from the cluster
    Poisson bootstrap (int_rerank_bootstrap_weights: clusters of queries
    drawn together, the same resample before and after), a verdict by the
    evidence rule (better / worse / no evidence: the difference over its
    bootstrap standard error, two-sided, Holm-adjusted over the sections),
    how many queries it improved, worsened or left unchanged, and the stage-1
    ceiling: the share of queries whose positive is among the candidates,
    the best any reranker can reach for recall at rerank_candidates. Every
    floating-point sum runs in query order, so the figures do not depend on
    the order of the rows. -#}
{%- set replicates = bootstrap_replicates() %}
{%- set depth = rerank_candidates() %}
{%- set family = ['reranker', 'pair', 'direction', 'metric'] %}

with

ranks as (
    select * from {{ ref('fct_rerank_ranks') }}
),

weights as (
    select * from {{ ref('int_rerank_bootstrap_weights') }}
),

query_metrics as (
    select
        ranks.reranker,
        ranks.pair,
        ranks.direction,
        ranks.query_product_id,
        ranks.collection_section,
        ranks.is_positive_retrieved,
        ranks.is_reranked,
        metrics.metric,
        metrics.before,
        metrics.after
    from ranks
    cross join lateral (
        values
        {%- for k in rerank_k_values() %}
            (
                'recall_at_{{ k }}',
                case when ranks.stage1_rank <= {{ k }} then 1.0 else 0.0 end::float8,
                case when ranks.stage2_rank <= {{ k }} then 1.0 else 0.0 end::float8
            ),
        {%- endfor %}
        (
            'mrr_at_{{ depth }}',
            coalesce(1.0 / ranks.stage1_rank, 0.0)::float8,
            coalesce(1.0 / ranks.stage2_rank, 0.0)::float8
        )
    ) as metrics (metric, before, after)
),

sums as (
    select
        query_metrics.reranker,
        query_metrics.pair,
        query_metrics.direction,
        case when grouping(query_metrics.collection_section) = 1 then 'ALL' else query_metrics.collection_section end
            as section,
        query_metrics.metric,
        count(*)::integer as n,
        avg(query_metrics.before order by query_metrics.query_product_id) as before,
        avg(query_metrics.after order by query_metrics.query_product_id) as after,
        count(*) filter (where query_metrics.after > query_metrics.before)::integer as n_improved,
        count(*) filter (where query_metrics.after < query_metrics.before)::integer as n_worsened,
        count(*) filter (where query_metrics.after = query_metrics.before)::integer as n_unchanged,
        count(*) filter (where query_metrics.is_positive_retrieved)::integer as n_positive_retrieved,
        count(*) filter (where not query_metrics.is_reranked)::integer as n_not_reranked,
        sum(weights.weights order by query_metrics.query_product_id) as weight_sums,
        sum(
            weights.weights
            * array_fill((query_metrics.after - query_metrics.before)::real, array[{{ replicates }}])::vector
            order by query_metrics.query_product_id
        ) as weighted_difference_sums
    from query_metrics
    inner join weights on query_metrics.query_product_id = weights.product_id
    group by grouping sets (
        (
            query_metrics.reranker, query_metrics.pair, query_metrics.direction,
            query_metrics.metric, query_metrics.collection_section
        ),
        (query_metrics.reranker, query_metrics.pair, query_metrics.direction, query_metrics.metric)
    )
),

intervals as (
    select
        sums.reranker,
        sums.pair,
        sums.direction,
        sums.section,
        sums.metric,
        percentile_cont(0.025) within group (order by resampled.difference_sum / resampled.weight_sum) as ci_low,
        percentile_cont(0.975) within group (order by resampled.difference_sum / resampled.weight_sum) as ci_high,
        stddev_samp(resampled.difference_sum::float8 / resampled.weight_sum) as standard_error
    from sums
    cross join
        lateral unnest(
            sums.weight_sums::real[], sums.weighted_difference_sums::real[]
        ) as resampled (weight_sum, difference_sum)
    where resampled.weight_sum > 0
    group by sums.reranker, sums.pair, sums.direction, sums.section, sums.metric
),

tested as (
    select
        sums.*,
        intervals.ci_low,
        intervals.ci_high,
        intervals.standard_error,
        {{ p_two_sided('sums.after - sums.before', 'intervals.standard_error') }} as p_value
    from sums
    left join intervals
        on
            sums.reranker = intervals.reranker
            and sums.pair = intervals.pair
            and sums.direction = intervals.direction
            and sums.section = intervals.section
            and sums.metric = intervals.metric
),

scaled as (
    select
        *,
        -- ALL is a family of its own; the sections are corrected together
        {{ holm_scaled('p_value', family + ["section = 'ALL'"], 'section') }} as p_scaled
    from tested
),

adjusted as (
    select
        *,
        {{ holm_adjusted('p_scaled', 'p_value', family + ["section = 'ALL'"], 'section') }} as p_holm
    from scaled
),

final as (
    select
        sums.reranker,
        sums.pair,
        sums.direction,
        sums.section,
        sums.metric,
        sums.n,
        sums.before,
        sums.after,
        sums.after - sums.before as difference,
        -- 12 decimals: the percentile's interpolation leaves float noise in the last bits
        round(sums.ci_low::numeric, 12)::float8 as ci_low,
        round(sums.ci_high::numeric, 12)::float8 as ci_high,
        {{ sql_string('paired ' ~ cluster_interval_method('percentile')) }}::text as interval_method,
        sums.standard_error,
        sums.p_value,
        sums.p_holm,
        {{ evidence_verdict('sums.p_holm', 'sums.after - sums.before') }} as verdict,
        sums.n_improved,
        sums.n_worsened,
        sums.n_unchanged,
        sums.n_positive_retrieved,
        sums.n_positive_retrieved::float8 / sums.n as stage1_ceiling,
        sums.n_not_reranked,
        {{ depth }} as n_candidates
    from adjusted as sums
)

select * from final
