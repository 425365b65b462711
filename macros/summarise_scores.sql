{#- The one aggregator behind every retrieval metric: from `scores` (one row
    per query and metric: product_id, collection_section, metric, k,
    interval_method, score, dedup_tolerant_score, plus the `keys` columns)
    and `weights` (one row per query product: its cluster bootstrap weights,
    macro cluster_bootstrap_weights), one row per (keys, section, metric) for
    every section of every level (int_section_levels) and `ALL`: n, the mean
    score as value, and a 95% interval. A section with fewer queries than
    vars.section_min_queries is folded into its level's `other` row. Each
    level has its own `ALL` row: value is the micro average (over queries,
    the same at every level), macro_value the mean of the level's section
    rows and n_sections their count.

    The interval resamples clusters (int_bootstrap_clusters): the estimate
    +/- 1.96 standard deviations of its B cluster-bootstrap replicates
    (weighted means), clipped to [0, 1] and never narrower than the
    independent-query interval beside it (ci_low_independent,
    ci_high_independent: Wilson for a 0/1 score, interval_method_independent
    wilson; normal approximation for a mean, normal). Beside each figure, its
    dedup-tolerant twin, and for 0/1 scores the share of strict misses that
    the tolerant score turned into hits.

    Each section also carries its evidence against ALL (macro evidence
    rules): the paired difference section - ALL replicate by replicate, its
    standard error (floored at what a section drawn like ALL would show, see
    evidence_se below), a one-sided p-value (on the section's clusters - 1
    degrees of freedom, macro p_below_zero), Holm-adjusted over the sections of
    the same (keys, metric, section_level), is_weaker_than_all, is_small_section and a
    weakness_rank that puts evidence first. -#}
{% macro summarise_scores(scores, keys, weights) %}
{%- set grouped = keys + ['metric', 'k', 'interval_method'] %}
{%- set family = keys + ['metric', 'k', 'section_level'] %}
{%- set grouped_levels = grouped + ['section_level'] %}
{%- set z = 1.959963984540054 %}
{#- the standard error the evidence reads: the paired bootstrap's, but never below
    what a section of n queries drawn like ALL would show (ALL's per-query standard
    deviation / sqrt(n), times the share of ALL that is not the section). A section
    whose every score is equal (R@10 = 0 on 300 queries) has no bootstrap spread,
    yet under "it is like ALL" its figure would still vary. -#}
{%- set evidence_se = "greatest(figures.difference_standard_error, (1 - figures.n::float8 / overall.n) * overall.score_stddev / sqrt(figures.n))" %}
    with

    aggregated as (
        select
            {%- for column in grouped %}
            scores.{{ column }},
            {%- endfor %}
            scores.section_level,
            {{ section_label('scores.section') }} as section,
            count(*) as n,
            count(distinct weights.cluster_id) as n_clusters,
            sum(scores.score)::bigint as hits,
            avg(scores.score order by scores.product_id) as score_mean,
            stddev_samp(scores.score order by scores.product_id) as score_stddev,
            sum(scores.dedup_tolerant_score)::bigint as tolerant_hits,
            avg(scores.dedup_tolerant_score order by scores.product_id) as tolerant_mean,
            stddev_samp(scores.dedup_tolerant_score order by scores.product_id) as tolerant_stddev,
            -- per replicate: the weight of the rows and the weighted sums (float4, in product order)
            sum(weights.weights order by scores.product_id) as weight_sums,
            sum(
                weights.weights * array_fill(scores.score::real, array[vector_dims(weights.weights)])::vector
                order by scores.product_id
            ) as score_sums,
            sum(
                weights.weights
                * array_fill(scores.dedup_tolerant_score::real, array[vector_dims(weights.weights)])::vector
                order by scores.product_id
            ) as tolerant_sums
        from ({{ sectioned_scores(scores, grouped) }}) as scores
        inner join {{ weights }} as weights on scores.product_id = weights.product_id
        group by grouping sets (
            ({{ grouped_levels | join(', ') }}, scores.section), ({{ grouped_levels | join(', ') }})
        )
    ),

    replicates as (
        select
            {%- for column in grouped_levels %}
            aggregated.{{ column }},
            {%- endfor %}
            aggregated.section,
            resampled.replicate,
            resampled.score_sum::float8 / nullif(resampled.weight_sum, 0) as score_mean,
            resampled.tolerant_sum::float8 / nullif(resampled.weight_sum, 0) as tolerant_mean
        from aggregated
        cross join lateral unnest(
            aggregated.weight_sums::real[], aggregated.score_sums::real[], aggregated.tolerant_sums::real[]
        ) with ordinality as resampled (weight_sum, score_sum, tolerant_sum, replicate)
    ),

    spreads as (
        select
            {%- for column in grouped_levels %}
            sections.{{ column }},
            {%- endfor %}
            sections.section,
            stddev_samp(sections.score_mean) as standard_error,
            stddev_samp(sections.tolerant_mean) as tolerant_standard_error,
            stddev_samp(sections.score_mean - overall.score_mean) filter (where sections.section <> 'ALL')
                as difference_standard_error
        from replicates as sections
        inner join replicates as overall
            on
                {%- for column in grouped_levels %}
                sections.{{ column }} = overall.{{ column }} and
                {%- endfor %}
                sections.replicate = overall.replicate
                and overall.section = 'ALL'
        group by {% for column in grouped_levels %}sections.{{ column }}, {% endfor %}sections.section
    ),

    figures as (
        select
            {%- for column in grouped_levels %}
            aggregated.{{ column }},
            {%- endfor %}
            aggregated.section,
            aggregated.n,
            aggregated.n_clusters,
            aggregated.hits,
            aggregated.tolerant_hits,
            aggregated.score_mean,
            aggregated.score_stddev,
            aggregated.tolerant_mean,
            aggregated.tolerant_stddev,
            case
                when aggregated.interval_method = 'wilson' then aggregated.hits::float8 / aggregated.n
                else aggregated.score_mean::float8
            end as value,
            case
                when aggregated.interval_method = 'wilson' then aggregated.tolerant_hits::float8 / aggregated.n
                else aggregated.tolerant_mean::float8
            end as tolerant_value,
            {{ score_interval('aggregated.hits', 'aggregated.score_mean', 'aggregated.score_stddev', 'low') }}
                as ci_low_independent,
            {{ score_interval('aggregated.hits', 'aggregated.score_mean', 'aggregated.score_stddev', 'high') }}
                as ci_high_independent,
            {{ score_interval('aggregated.tolerant_hits', 'aggregated.tolerant_mean', 'aggregated.tolerant_stddev', 'low') }}
                as tolerant_ci_low_independent,
            {{ score_interval('aggregated.tolerant_hits', 'aggregated.tolerant_mean', 'aggregated.tolerant_stddev', 'high') }}
                as tolerant_ci_high_independent,
            spreads.standard_error,
            spreads.tolerant_standard_error,
            spreads.difference_standard_error
        from aggregated
        left join spreads
            on
                {%- for column in grouped_levels %}
                aggregated.{{ column }} = spreads.{{ column }} and
                {%- endfor %}
                aggregated.section = spreads.section
    ),

    compared as (
        select
            figures.*,
            figures.value - overall.value as difference_from_all,
            case when figures.section <> 'ALL' then
                {{ p_below_zero('figures.value - overall.value', evidence_se, 'figures.n_clusters') }}
            end as weaker_p_value,
            case when figures.section <> 'ALL' then {{ evidence_se }} end as evidence_standard_error
        from figures
        inner join figures as overall
            on
                {%- for column in grouped_levels %}
                figures.{{ column }} = overall.{{ column }} and
                {%- endfor %}
                overall.section = 'ALL'
    ),

    scaled as (
        select
            *,
            {{ holm_scaled('weaker_p_value', family, 'section') }} as weaker_p_scaled
        from compared
    ),

    adjusted as (
        select
            *,
            {{ holm_adjusted('weaker_p_scaled', 'weaker_p_value', family, 'section') }} as weaker_p_holm
        from scaled
    ),

    evidenced as (
        select
            *,
            case when section <> 'ALL' then coalesce(weaker_p_holm < {{ evidence_alpha() }}, false) end
                as is_weaker_than_all,
            case when section <> 'ALL' then n < {{ small_section_n() }} end as is_small_section
        from adjusted
    )

    select
        {%- for key in keys %}
        {{ key }},
        {%- endfor %}
        section_level,
        section,
        metric,
        k,
        value,
        n,
        case when interval_method = 'wilson' then hits end as hits,
        least(ci_low_independent, case when standard_error is not null then greatest(0, value - {{ z }} * standard_error) end)
            as ci_low,
        greatest(ci_high_independent, case when standard_error is not null then least(1, value + {{ z }} * standard_error) end)
            as ci_high,
        {{ sql_string(cluster_interval_method()) }}::text as interval_method,
        ci_low_independent,
        ci_high_independent,
        interval_method as interval_method_independent,
        standard_error,
        n_clusters,
        tolerant_value as dedup_tolerant_value,
        case when interval_method = 'wilson' then tolerant_hits end as dedup_tolerant_hits,
        least(
            tolerant_ci_low_independent,
            case when tolerant_standard_error is not null then greatest(0, tolerant_value - {{ z }} * tolerant_standard_error) end
        )
            as dedup_tolerant_ci_low,
        greatest(
            tolerant_ci_high_independent,
            case when tolerant_standard_error is not null then least(1, tolerant_value + {{ z }} * tolerant_standard_error) end
        )
            as dedup_tolerant_ci_high,
        case
            when interval_method = 'wilson'
                then (tolerant_hits - hits)::float8 / nullif(n - hits, 0)
        end as duplicate_miss_share,
        difference_from_all,
        difference_standard_error,
        evidence_standard_error,
        weaker_p_value,
        weaker_p_holm,
        is_weaker_than_all,
        is_small_section,
        case
            when section <> 'ALL' then
                case when is_weaker_than_all then 'weaker than ALL' else 'no evidence' end
                || case when is_small_section then ' (small section)' else '' end
        end as evidence,
        case
            when section <> 'ALL'
                then row_number() over (
                        partition by {{ family | join(', ') }}, section = 'ALL'
                        order by
                            is_weaker_than_all desc, weaker_p_holm asc nulls last,
                            least(1, value + {{ z }} * standard_error) asc, value asc, n desc, section asc
                    )
        end as weakness_rank,
        case when section = 'ALL' then
                avg(value) filter (where section <> 'ALL') over sections_in_order
        end as macro_value,
        case when section = 'ALL' then
                count(*) filter (where section <> 'ALL') over sections_in_order
        end as n_sections
    from evidenced
    window sections_in_order as (
        partition by {{ family | join(', ') }} order by section rows between unbounded preceding and unbounded following
    )
{% endmacro %}


{#- `scores` with each query at every level of its section's path
    (int_section_levels): section_level and section, the section folded into
    `other` when it has fewer than vars.section_min_queries queries among the
    rows of its (`grouped`, level). -#}
{% macro sectioned_scores(scores, grouped) -%}
    {%- set partition = [] %}
    {%- for column in grouped %}{% do partition.append('scores.' ~ column) %}{% endfor %}
        select
            scores.*,
            levels.section_level,
            {{ folded_section(
                'levels.section',
                'count(*) over (partition by ' ~ (partition | join(', ')) ~ ', levels.section_level, levels.section)'
            ) }} as section
        from {{ scores }} as scores
        inner join {{ ref('int_section_levels') }} as levels
            on scores.collection_section = levels.collection_section
{%- endmacro %}


{#- One side of a score's independent-query 95% interval, by the row's
    interval_method. -#}
{% macro score_interval(hits, mean, stddev, side) -%}
    case
        when aggregated.interval_method = 'wilson' then {{ wilson_bound(hits, 'aggregated.n', side) }}
        when aggregated.interval_method = 'normal' then
            {%- if side == 'low' %}
            greatest(0, {{ mean_ci_bound(mean, stddev, 'aggregated.n', 'low') }})
            {%- else %}
            least(1, {{ mean_ci_bound(mean, stddev, 'aggregated.n', 'high') }})
            {%- endif %}
    end
{%- endmacro %}
