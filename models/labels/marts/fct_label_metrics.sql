{{ config(enabled=family_enabled('labels')) }}
{#- How well each text space separates collection_section, in tidy form:
    one row per (space, metric, reduction, section) with n and a 95%
    interval. 1-NN accuracy gets a Wilson interval; silhouette, ARI and NMI
    the estimate +/- 1.96 bootstrap standard errors (the standard deviation of
    its Poisson bootstrap replicates in int_label_replicates), clipped to the
    metric's range.
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
    The rank goes by the upper end of the 95% interval (the value where
    there is none), so a 3-product section ranks weakest only when even its
    optimistic bound is low, not by the noise of a small n. -#}

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
        stddev_samp(scores.value) as seed_stddev
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
        avg(explained_variance) as explained_variance
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
        case
            when point_estimates.metric = 'nn1_accuracy'
                then {{ wilson_bound('nn_hits.hits', 'point_estimates.n_products', 'low') }}
            else greatest(
                    case when point_estimates.metric = 'kmeans_nmi' then 0 else -1 end,
                    {{ bootstrap_bound('point_estimates.value', 'bootstrap_intervals.standard_error', 'low') }}
                )
        end as ci_low,
        case
            when point_estimates.metric = 'nn1_accuracy'
                then {{ wilson_bound('nn_hits.hits', 'point_estimates.n_products', 'high') }}
            else least(
                    1, {{ bootstrap_bound('point_estimates.value', 'bootstrap_intervals.standard_error', 'high') }}
                )
        end as ci_high,
        case
            when point_estimates.metric = 'nn1_accuracy' then 'wilson'
            else 'bootstrap_se'
        end as interval_method,
        bootstrap_intervals.standard_error,
        bootstrap_intervals.n_replicates,
        seed_spread.n_seeds,
        seed_spread.seed_stddev,
        explained.explained_variance,
        chance_levels.chance_level,
        majorities.majority_share,
        majorities.majority_section
    from point_estimates
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

final as (
    select
        *,
        case
            when metric = 'silhouette_cosine' then value < 0
        end as is_negative_silhouette,
        (value - chance_level) / nullif(1 - chance_level, 0) as kappa,
        majority_share > {{ var('label_dominant_share', 0.5) }} as is_dominated,
        case
            when section <> 'ALL'
                then row_number() over (
                        partition by space, metric, reduction, section = 'ALL'
                        order by coalesce(ci_high, value) asc, value asc, n desc, section asc
                    )
        end as weakness_rank,
        now() as computed_at
    from combined
)

select * from final
