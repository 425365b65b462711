{{ config(enabled=family_enabled('history')) }}
{#- Each metric of the latest run against two references: the previous
    comparable run (the latest earlier run with the same metric identity:
    family, pair or space, direction, section and metric; config_changed
    says whether its configuration hash differs) and the pinned baseline
    (`embed-udfs baseline set`). The interval of the difference is an
    unpaired normal approximation: each side's standard error is its 95%
    interval's width / (2 * 1.96), and the two add in quadrature. Per-query
    scores of old runs are not kept, so no paired interval is possible; when
    both runs score the same queries the unpaired interval is conservative.
    Each run's interval resamples clusters of queries, so the standard errors
    are cluster-robust. The verdict follows the evidence rule (macro
    evidence rules): a two-sided normal p-value of the difference,
    Holm-adjusted over the sections of one (reference, family, pair,
    direction, metric), ALL being a family of its own; better or worse when
    the adjusted p-value is below vars.evidence_alpha. A verdict is only
    given where both figures carry an interval (or the figures are equal). A
    figure is compared within its gallery_scope (sample, catalog); rows from
    before the scope existed are the sample's. -#}

{%- set z = 1.959963984540054 -%}
{%- set family = ['reference', 'family', 'pair', 'direction', 'gallery_scope', 'metric', "section = 'ALL'"] -%}

with

history as (
    select
        run_id,
        run_started_at,
        config_hash,
        family,
        pair,
        direction,
        coalesce(gallery_scope, 'sample') as gallery_scope,
        gallery_size,
        section,
        metric,
        value,
        dedup_tolerant_value,
        n,
        ci_low,
        ci_high
    from {{ ref('fct_metric_history') }}
),

runs as (
    select * from {{ ref('dim_runs') }}
),

pinned as (
    select run_id from {{ ref('stg_runs__baseline') }}
),

latest as (
    select
        run_id,
        run_started_at
    from history
    order by run_started_at desc, run_id desc
    limit 1
),

current_figures as (
    select history.*
    from history
    inner join latest on history.run_id = latest.run_id
),

earlier_figures as (
    select
        history.*,
        row_number() over (
            partition by
                history.family,
                history.pair,
                history.direction,
                history.gallery_scope,
                history.section,
                history.metric
            order by history.run_started_at desc, history.run_id desc
        ) as recency
    from history
    inner join latest
        on history.run_started_at < latest.run_started_at
),

previous_figures as (
    select * from earlier_figures
    where recency = 1
),

baseline_figures as (
    select
        history.*,
        1::bigint as recency
    from history
    inner join pinned on history.run_id = pinned.run_id
),

references_ as (
    select
        'previous' as reference,
        *
    from previous_figures

    union all

    select
        'baseline' as reference,
        *
    from baseline_figures
),

compared as (
    select
        current_figures.run_id,
        current_figures.run_started_at,
        references_.reference,
        references_.run_id as reference_run_id,
        references_.run_started_at as reference_started_at,
        current_figures.family,
        current_figures.pair,
        current_figures.direction,
        current_figures.gallery_scope,
        current_figures.gallery_size,
        references_.gallery_size as reference_gallery_size,
        current_figures.section,
        current_figures.metric,
        -- lower is better only for these two; every other metric (recall, MRR,
        -- nDCG, purity, gaps, 1-NN accuracy, silhouette, ARI, NMI) is higher-is-better
        current_figures.metric not in ('cosine_negative_mean', 'sq_euclidean_positive_mean') as higher_is_better,
        current_figures.value,
        references_.value as reference_value,
        current_figures.value - references_.value as difference,
        current_figures.n,
        references_.n as reference_n,
        sqrt(
            ((current_figures.ci_high - current_figures.ci_low) / (2 * {{ z }})) ^ 2
            + ((references_.ci_high - references_.ci_low) / (2 * {{ z }})) ^ 2
        ) as difference_standard_error,
        coalesce(current_figures.config_hash, '')
        != coalesce(references_.config_hash, '') as config_changed
    from current_figures
    inner join references_
        on current_figures.family = references_.family
            and current_figures.pair = references_.pair
            and current_figures.direction = references_.direction
            and current_figures.gallery_scope = references_.gallery_scope
            and current_figures.section = references_.section
            and current_figures.metric = references_.metric
),

intervals as (
    select
        *,
        difference - {{ z }} * difference_standard_error as ci_low,
        difference + {{ z }} * difference_standard_error as ci_high,
        case when difference_standard_error is not null
                then {{ p_two_sided('difference', 'difference_standard_error') }}
        end as p_value
    from compared
),

scaled as (
    select
        *,
        {{ holm_scaled('p_value', family, 'section') }} as p_scaled
    from intervals
),

adjusted as (
    select
        *,
        {{ holm_adjusted('p_scaled', 'p_value', family, 'section') }} as p_holm
    from scaled
),

final as (
    select
        intervals.run_id,
        intervals.run_started_at,
        runs.run_label,
        intervals.reference,
        intervals.reference_run_id,
        intervals.reference_started_at,
        intervals.config_changed,
        intervals.family,
        intervals.pair,
        intervals.direction,
        intervals.gallery_scope,
        intervals.gallery_size,
        intervals.reference_gallery_size,
        intervals.section,
        intervals.metric,
        intervals.higher_is_better,
        intervals.value,
        intervals.reference_value,
        intervals.difference,
        intervals.ci_low,
        intervals.ci_high,
        case
            when intervals.ci_low is not null then 'unpaired normal from each run''s cluster bootstrap interval'
        end as interval_method,
        intervals.p_value,
        intervals.p_holm,
        case
            when intervals.ci_low is null
                then case when intervals.difference = 0 then 'no detectable change' end
            when intervals.p_holm >= {{ evidence_alpha() }} then 'no detectable change'
            when (intervals.difference > 0) = intervals.higher_is_better then 'better'
            else 'worse'
        end as verdict,
        intervals.n,
        intervals.reference_n,
        now() as computed_at
    from adjusted as intervals
    left join runs on intervals.run_id = runs.run_id
)

select * from final
