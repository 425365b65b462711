{{ config(enabled=family_enabled('labels')) }}
{#- How well each text space separates collection_section, in tidy form:
    one row per (space, metric, reduction, section) with n and a 95%
    interval that resamples clusters of products (int_bootstrap_weights):
    the estimate +/- 1.96 bootstrap standard errors (the standard deviation
    of its cluster bootstrap replicates in int_label_replicates), clipped to
    the metric's range; for 1-NN accuracy never narrower than the Wilson
    interval, which treats products as independent and sits beside it
    (ci_low_independent, ci_high_independent).
    Every 1-NN accuracy row carries what a label-blind neighbour would
    score: chance_level (ALL: the sum of squared section shares, the hit
    rate of a neighbour drawn at random from the sample; a section: its
    share), the majority share (the largest section's share, with its name)
    and kappa, Cohen's kappa against that chance level, (accuracy - chance)
    / (1 - chance): 0 at chance, 1 when every neighbour shares the section,
    whatever the skew. Kappa rather than balanced accuracy because it
    re-expresses the same hits against the chance level printed beside them,
    per section and for ALL alike.
    Sections are ranked weakest first within each (space, metric,
    reduction) only: a silhouette is never ranked against another space's.
    The rank goes by evidence (macro evidence rules): a section is weaker
    than ALL when the paired bootstrap difference section - ALL is below 0
    with a Holm-adjusted one-sided p-value under vars.evidence_alpha; those
    come first, then by the adjusted p-value and the upper end of the 95%
    interval, so a 3-product section never leads by the noise of a small n. -#}
{%- set z = 1.959963984540054 %}
{%- set family = ['space', 'metric', 'reduction'] %}

with

replicates as (
    select * from {{ ref('int_label_replicates') }}
),

kmeans_scores as (
    select * from {{ ref('int_kmeans_scores') }}
    where replicate = 0
),

runs as (
    select * from {{ ref('stg_embeddings__cluster_runs') }}
),

neighbours as (
    select * from {{ ref('int_label_neighbours') }}
),

point_estimates as (
    select * from replicates
    where replicate = 0
),

bootstrap_intervals as (
    select
        space,
        metric,
        reduction,
        section,
        count(value) as n_replicates,
        stddev_samp(value) as standard_error
    from replicates
    where replicate > 0
    group by space, metric, reduction, section
),

weights as (
    select * from {{ ref('int_bootstrap_weights') }}
),

-- the clusters behind each section's figure: the degrees of freedom of its evidence
section_clusters as (
    select
        neighbours.space,
        {{ section_label('neighbours.collection_section') }} as section,
        count(distinct weights.cluster_id) as n_clusters
    from neighbours
    inner join weights on neighbours.product_id = weights.product_id
    group by grouping sets ((neighbours.space, neighbours.collection_section), (neighbours.space))
),

-- each section's replicate minus ALL's, the same resample on both sides
section_differences as (
    select
        sections.space,
        sections.metric,
        sections.reduction,
        sections.section,
        stddev_samp(sections.value - overall.value) as difference_standard_error
    from replicates as sections
    inner join replicates as overall
        on
            sections.space = overall.space
            and sections.metric = overall.metric
            and sections.reduction = overall.reduction
            and sections.replicate = overall.replicate
            and overall.section = 'ALL'
    where sections.replicate > 0 and sections.section <> 'ALL'
    group by sections.space, sections.metric, sections.reduction, sections.section
),

nn_hits as (
    select
        space,
        {{ section_label('collection_section') }} as section,
        count(*) filter (where is_same_section) as hits
    from neighbours
    group by grouping sets ((space, collection_section), (space))
),

section_shares as (
    select
        space,
        collection_section as section,
        count(*)::float8 / sum(count(*)) over (partition by space) as share
    from neighbours
    group by space, collection_section
),

chance_levels as (
    select
        space,
        section,
        share as chance_level
    from section_shares
    union all
    select
        space,
        'ALL' as section,
        -- in section order, so that the last bit does not follow the plan
        sum(share * share order by section) as chance_level
    from section_shares
    group by space
),

majorities as (
    select
        space,
        max(share) as majority_share,
        (array_agg(section order by share desc, section asc))[1] as majority_section
    from section_shares
    group by space
),

seed_spread as (
    select
        kmeans_scores.space,
        scores.metric,
        kmeans_scores.reduction,
        count(*) as n_seeds,
        stddev_samp(scores.value order by kmeans_scores.seed) as seed_stddev
    from kmeans_scores
    cross join
        lateral (
            values ('kmeans_ari', kmeans_scores.ari), ('kmeans_nmi', kmeans_scores.nmi)
        ) as scores (metric, value)
    where kmeans_scores.seed in ({{ label_kmeans_seeds() | join(', ') }})
    group by kmeans_scores.space, scores.metric, kmeans_scores.reduction
),

explained as (
    select
        space,
        reduction,
        avg(explained_variance order by seed) as explained_variance
    from runs
    group by space, reduction
),

combined as (
    select
        point_estimates.space,
        point_estimates.metric,
        point_estimates.reduction,
        point_estimates.dims,
        point_estimates.section,
        point_estimates.value,
        point_estimates.n_products as n,
        nn_hits.hits,
        -- 1-NN: the cluster interval, never narrower than Wilson's (which always holds the value)
        case
            when point_estimates.metric = 'nn1_accuracy'
                then greatest(0, least(
                        {{ wilson_bound('nn_hits.hits', 'point_estimates.n_products', 'low') }},
                        {{ bootstrap_bound('point_estimates.value', 'coalesce(bootstrap_intervals.standard_error, 0)', 'low') }}
                    ))
            else greatest(
                    case when point_estimates.metric = 'kmeans_nmi' then 0 else -1 end,
                    {{ bootstrap_bound('point_estimates.value', 'bootstrap_intervals.standard_error', 'low') }}
                )
        end as ci_low,
        case
            when point_estimates.metric = 'nn1_accuracy'
                then least(1, greatest(
                        {{ wilson_bound('nn_hits.hits', 'point_estimates.n_products', 'high') }},
                        {{ bootstrap_bound('point_estimates.value', 'coalesce(bootstrap_intervals.standard_error, 0)', 'high') }}
                    ))
            else least(
                    1, {{ bootstrap_bound('point_estimates.value', 'bootstrap_intervals.standard_error', 'high') }}
                )
        end as ci_high,
        {{ sql_string(cluster_interval_method()) }}::text as interval_method,
        case
            when point_estimates.metric = 'nn1_accuracy'
                then {{ wilson_bound('nn_hits.hits', 'point_estimates.n_products', 'low') }}
        end as ci_low_independent,
        case
            when point_estimates.metric = 'nn1_accuracy'
                then {{ wilson_bound('nn_hits.hits', 'point_estimates.n_products', 'high') }}
        end as ci_high_independent,
        case when point_estimates.metric = 'nn1_accuracy' then 'wilson' end as interval_method_independent,
        bootstrap_intervals.standard_error,
        bootstrap_intervals.n_replicates,
        seed_spread.n_seeds,
        seed_spread.seed_stddev,
        explained.explained_variance,
        chance_levels.chance_level,
        majorities.majority_share,
        majorities.majority_section,
        section_clusters.n_clusters,
        point_estimates.value - overall.value as difference_from_all,
        section_differences.difference_standard_error,
        case when point_estimates.section <> 'ALL' and point_estimates.metric in ('nn1_accuracy', 'silhouette_cosine')
                then {{ p_below_zero(
                    'point_estimates.value - overall.value',
                    'section_differences.difference_standard_error',
                    'section_clusters.n_clusters'
                ) }}
        end as weaker_p_value
    from point_estimates
    left join point_estimates as overall
        on
            point_estimates.space = overall.space
            and point_estimates.metric = overall.metric
            and point_estimates.reduction = overall.reduction
            and overall.section = 'ALL'
    left join section_clusters
        on
            point_estimates.space = section_clusters.space
            and point_estimates.section = section_clusters.section
            and point_estimates.metric in ('nn1_accuracy', 'silhouette_cosine')
    left join section_differences
        on
            point_estimates.space = section_differences.space
            and point_estimates.metric = section_differences.metric
            and point_estimates.reduction = section_differences.reduction
            and point_estimates.section = section_differences.section
    left join bootstrap_intervals
        on
            point_estimates.space = bootstrap_intervals.space
            and point_estimates.metric = bootstrap_intervals.metric
            and point_estimates.reduction = bootstrap_intervals.reduction
            and point_estimates.section = bootstrap_intervals.section
    left join nn_hits
        on
            point_estimates.metric = 'nn1_accuracy'
            and point_estimates.space = nn_hits.space
            and point_estimates.section = nn_hits.section
    left join seed_spread
        on
            point_estimates.space = seed_spread.space
            and point_estimates.metric = seed_spread.metric
            and point_estimates.reduction = seed_spread.reduction
    left join explained
        on
            point_estimates.space = explained.space
            and point_estimates.reduction = explained.reduction
            and point_estimates.metric in ('kmeans_ari', 'kmeans_nmi')
    left join chance_levels
        on
            point_estimates.metric = 'nn1_accuracy'
            and point_estimates.space = chance_levels.space
            and point_estimates.section = chance_levels.section
    left join majorities
        on
            point_estimates.metric = 'nn1_accuracy'
            and point_estimates.space = majorities.space
),

scaled as (
    select
        *,
        {{ holm_scaled('weaker_p_value', family, 'section') }} as weaker_p_scaled
    from combined
),

evidenced as (
    select
        *,
        {{ holm_adjusted('weaker_p_scaled', 'weaker_p_value', family, 'section') }} as weaker_p_holm
    from scaled
),

final as (
    select
        space,
        metric,
        reduction,
        dims,
        section,
        value,
        n,
        hits,
        ci_low,
        ci_high,
        interval_method,
        ci_low_independent,
        ci_high_independent,
        interval_method_independent,
        standard_error,
        n_replicates,
        n_seeds,
        seed_stddev,
        explained_variance,
        chance_level,
        majority_share,
        majority_section,
        n_clusters,
        difference_from_all,
        difference_standard_error,
        weaker_p_value,
        weaker_p_holm,
        case when weaker_p_value is not null then weaker_p_holm < {{ evidence_alpha() }} end as is_weaker_than_all,
        case when section <> 'ALL' then n < {{ small_section_n() }} end as is_small_section,
        case
            when weaker_p_value is not null then
                case when weaker_p_holm < {{ evidence_alpha() }} then 'weaker than ALL' else 'no evidence' end
                || case when n < {{ small_section_n() }} then ' (small section)' else '' end
        end as evidence,
        case
            when metric = 'silhouette_cosine' then value < 0
        end as is_negative_silhouette,
        (value - chance_level) / nullif(1 - chance_level, 0) as kappa,
        majority_share > {{ var('label_dominant_share', 0.5) }} as is_dominated,
        case
            when section <> 'ALL'
                then row_number() over (
                        partition by space, metric, reduction, section = 'ALL'
                        order by
                            coalesce(weaker_p_holm < {{ evidence_alpha() }}, false) desc,
                            weaker_p_holm asc nulls last,
                            coalesce(ci_high, value) asc, value asc, n desc, section asc
                    )
        end as weakness_rank,
        now() as computed_at
    from evidenced
)

select * from final
