{{ config(enabled=family_enabled('labels')) }}
{#- Does text space A separate collection_section better than space B? One
    row per (metric, reduction, section, space_a, space_b) for 1-NN accuracy,
    ARI and NMI, over every ordered pair of text spaces. The difference
    A - B is taken replicate by replicate of the same Poisson bootstrap
    (paired: the same products, drawn the same number of times, in both
    spaces); the interval is the difference +/- 1.96 standard deviations of
    its replicates. The rule:
    `yes` when the whole interval is above 0, `no` when it is below 0 (B is
    better), else `not separable at this n`. Silhouette is left out on
    purpose: its scale depends on each space's geometry, so it is not
    comparable across spaces. -#}

with

replicates as (
    select * from {{ ref('int_label_replicates') }}
    where metric in ('nn1_accuracy', 'kmeans_ari', 'kmeans_nmi')
),

paired as (
    select
        a.metric,
        a.reduction,
        a.section,
        a.space as space_a,
        b.space as space_b,
        a.replicate,
        a.value as value_a,
        b.value as value_b,
        a.value - b.value as difference,
        a.n_products as n_a,
        b.n_products as n_b
    from replicates as a
    inner join replicates as b
        on
            a.metric = b.metric
            and a.reduction = b.reduction
            and a.section = b.section
            and a.replicate = b.replicate
            and a.space <> b.space
),

intervals as (
    select
        metric,
        reduction,
        section,
        space_a,
        space_b,
        count(difference) filter (where replicate > 0) as n_replicates,
        max(value_a) filter (where replicate = 0) as value_a,
        max(value_b) filter (where replicate = 0) as value_b,
        max(difference) filter (where replicate = 0) as difference,
        stddev_samp(difference) filter (where replicate > 0) as standard_error,
        max(n_a) as n_a,
        max(n_b) as n_b
    from paired
    group by metric, reduction, section, space_a, space_b
),

bounded as (
    select
        *,
        {{ bootstrap_bound('difference', 'standard_error', 'low') }} as ci_low,
        {{ bootstrap_bound('difference', 'standard_error', 'high') }} as ci_high
    from intervals
),

final as (
    select
        *,
        case
            when ci_low > 0 then 'yes'
            when ci_high < 0 then 'no'
            else 'not separable at this n'
        end as a_beats_b,
        case
            when ci_low > 0 then space_a
            when ci_high < 0 then space_b
        end as better_space,
        now() as computed_at
    from bounded
)

select * from final
