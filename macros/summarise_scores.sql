{#- The one aggregator behind every retrieval metric: from `scores` (one row
    per query and metric: collection_section, metric, k, interval_method,
    score, dedup_tolerant_score, plus the `keys` columns), one row per (keys,
    section_level, section, metric) for every section of every level
    (int_section_levels) and `ALL`: n, the mean score as value, and a 95%
    interval. A section with fewer queries than vars.section_min_queries is
    folded into its level's `other` row. Each level has its own `ALL` row:
    value is the micro average (over queries, the same at every level),
    macro_value the mean of the level's section rows and n_sections their
    count. interval_method wilson marks a 0/1 score (hits and a
    Wilson interval); normal marks a mean of scores in [0, 1] (normal
    approximation, clipped to [0, 1]). Beside each figure, its dedup-tolerant
    twin, and for 0/1 scores the share of strict misses that the tolerant
    score turned into hits. -#}
{% macro summarise_scores(scores, keys) %}
{%- set grouped = keys + ['metric', 'k', 'interval_method'] %}
{%- set level_partition = [] %}
{%- for column in grouped %}{% do level_partition.append('aggregated.' ~ column) %}{% endfor %}
{%- do level_partition.append('aggregated.section_level') %}
    select
        {%- for key in keys %}
        aggregated.{{ key }},
        {%- endfor %}
        aggregated.section_level,
        aggregated.section,
        aggregated.metric,
        aggregated.k,
        case
            when aggregated.interval_method = 'wilson' then aggregated.hits::float8 / aggregated.n
            else aggregated.score_mean::float8
        end as value,
        aggregated.n,
        case when aggregated.interval_method = 'wilson' then aggregated.hits end as hits,
        {{ score_interval('aggregated.hits', 'aggregated.score_mean', 'aggregated.score_stddev', 'low') }} as ci_low,
        {{ score_interval('aggregated.hits', 'aggregated.score_mean', 'aggregated.score_stddev', 'high') }} as ci_high,
        aggregated.interval_method,
        case
            when aggregated.interval_method = 'wilson' then aggregated.tolerant_hits::float8 / aggregated.n
            else aggregated.tolerant_mean::float8
        end as dedup_tolerant_value,
        case when aggregated.interval_method = 'wilson' then aggregated.tolerant_hits end as dedup_tolerant_hits,
        {{ score_interval('aggregated.tolerant_hits', 'aggregated.tolerant_mean', 'aggregated.tolerant_stddev', 'low') }}
            as dedup_tolerant_ci_low,
        {{ score_interval('aggregated.tolerant_hits', 'aggregated.tolerant_mean', 'aggregated.tolerant_stddev', 'high') }}
            as dedup_tolerant_ci_high,
        case
            when aggregated.interval_method = 'wilson'
                then (aggregated.tolerant_hits - aggregated.hits)::float8 / nullif(aggregated.n - aggregated.hits, 0)
        end as duplicate_miss_share,
        case when aggregated.section = 'ALL' then
                avg(
                    case
                        when aggregated.interval_method = 'wilson' then aggregated.hits::float8 / aggregated.n
                        else aggregated.score_mean::float8
                    end
                ) filter (where aggregated.section <> 'ALL') over (partition by {{ level_partition | join(', ') }})
        end as macro_value,
        case when aggregated.section = 'ALL' then
                count(*) filter (where aggregated.section <> 'ALL') over (partition by {{ level_partition | join(', ') }})
        end as n_sections
    from (
        select
            {%- for column in grouped %}
            {{ column }},
            {%- endfor %}
            section_level,
            {{ section_label('section') }} as section,
            count(*) as n,
            sum(score)::bigint as hits,
            avg(score) as score_mean,
            stddev_samp(score) as score_stddev,
            sum(dedup_tolerant_score)::bigint as tolerant_hits,
            avg(dedup_tolerant_score) as tolerant_mean,
            stddev_samp(dedup_tolerant_score) as tolerant_stddev
        from ({{ sectioned_scores(scores, grouped) }}) as sectioned
        group by grouping sets (
            ({{ grouped | join(', ') }}, section_level, section), ({{ grouped | join(', ') }}, section_level)
        )
    ) as aggregated
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


{#- One side of a score's 95% interval, by the row's interval_method. -#}
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
