{{ config(enabled=family_enabled('labels')) }}
{#- Does text space A separate collection_section better than space B? One
    row per (metric, reduction, section, space_a, space_b) for 1-NN accuracy,
    ARI and NMI, over every ordered pair of text spaces. The difference
    A - B is taken replicate by replicate of the same cluster Poisson
    bootstrap (paired: the same clusters of products, drawn the same number
    of times, in both spaces); the interval is the difference +/- 1.96
    standard deviations of its replicates. The rule is the evidence rule
    (macro evidence rules): the difference over its standard error gives a
    two-sided p-value, Holm-adjusted over the sections of one comparison
    (ALL alone is a family of one, so there it is the interval excluding 0):
    verdict `better` (A is better), `worse`, or `no evidence`; a_beats_b
    says the same as `yes`, `no` or `not separable at this n`. Silhouette is left out on
    purpose: its scale depends on each space's geometry, so it is not
    comparable across spaces. -#}
{%- set family = ['metric', 'reduction', 'space_a', 'space_b', "section = 'ALL'"] %}

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

tested as (
    select
        *,
        {{ p_two_sided('difference', 'standard_error') }} as p_value
    from bounded
),

scaled as (
    select
        *,
        {{ holm_scaled('p_value', family, 'section') }} as p_scaled
    from tested
),

adjusted as (
    select
        *,
        {{ holm_adjusted('p_scaled', 'p_value', family, 'section') }} as p_holm
    from scaled
),

judged as (
    select
        *,
        coalesce({{ evidence_verdict('p_holm', 'difference') }}, 'no evidence') as verdict
    from adjusted
),

final as (
    select
        metric,
        reduction,
        section,
        space_a,
        space_b,
        n_replicates,
        value_a,
        value_b,
        difference,
        standard_error,
        n_a,
        n_b,
        ci_low,
        ci_high,
        {{ sql_string('paired ' ~ cluster_interval_method()) }}::text as interval_method,
        p_value,
        p_holm,
        verdict,
        case verdict
            when 'better' then 'yes'
            when 'worse' then 'no'
            else 'not separable at this n'
        end as a_beats_b,
        case verdict
            when 'better' then space_a
            when 'worse' then space_b
        end as better_space,
        now() as computed_at
    from judged
)

select * from final
