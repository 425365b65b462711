{{ config(enabled=family_enabled('gaps')) }}
{#- Cosine and squared-euclidean gaps between positive pairs (the text and
    the image of one product) and negative pairs (a product's text and any
    other product's image in the sample), per pair, section level and section
    (and ALL on every level; int_section_levels, with the sections under
    vars.section_min_queries folded into the level's `other`). Section s
    holds the pairs whose text side is in s. The negative means are
    exact and O(N): the sum over all (i, j != i) of t_i . v_j is
    (sum of t_i) . (sum of v_j) minus the positive dot products. The
    positive means carry a 95% interval that resamples clusters of products
    (int_eval_bootstrap_weights: estimate +/- 1.96 standard deviations of the
    cluster bootstrap replicates, never narrower than the independent normal
    interval beside it); the negative means and the gaps carry none.
    Floating-point sums depend on their order, so every sum runs in
    product_id order: a rerun on the same rows gives bit-identical figures. -#}
{%- set z = 1.959963984540054 %}

with

vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

weights as (
    select * from {{ ref('int_eval_bootstrap_weights') }}
),

{%- for pair in embedding_pairs() %}

    positives_{{ loop.index }} as (
        select
            {{ sql_string(pair.name) }}::text as pair,
            texts.product_id,
            texts.collection_section,
            texts.embedding as text_embedding,
            images.embedding as image_embedding,
            -(texts.embedding <#> images.embedding) as positive_dot,
            1 - (texts.embedding <=> images.embedding) as positive_cosine,
            (texts.embedding <-> images.embedding) ^ 2 as positive_sq_euclidean,
            vector_norm(texts.embedding) ^ 2 as text_sq_norm,
            vector_norm(images.embedding) ^ 2 as image_sq_norm
        from vectors as texts
        inner join vectors as images
            on texts.product_id = images.product_id
                and images.space = {{ sql_string(pair.image_space) }}
        where texts.space = {{ sql_string(pair.text_space) }}
    ),
{%- endfor %}

positives as (
    {%- for pair in embedding_pairs() %}
        select * from positives_{{ loop.index }}
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not embedding_pairs() %}
        {{ empty_relation({
            'pair': 'text', 'product_id': 'text', 'collection_section': 'text', 'text_embedding': 'vector',
            'image_embedding': 'vector', 'positive_dot': 'float8', 'positive_cosine': 'float8',
            'positive_sq_euclidean': 'float8', 'text_sq_norm': 'float8', 'image_sq_norm': 'float8'
        }) }}
    {%- endif %}
),

-- each positive pair at every level of its section's path, small sections
-- folded into their level's `other` (macros/section_levels.sql)
sectioned as (
    select
        positives.*,
        levels.section_level,
        {{ folded_section(
            'levels.section',
            'count(*) over (partition by positives.pair, levels.section_level, levels.section)'
        ) }} as section
    from positives
    inner join {{ ref('int_section_levels') }} as levels
        on positives.collection_section = levels.collection_section
),

gallery_totals as (
    select
        pair,
        count(*) as n_gallery,
        sum(image_embedding order by product_id) as image_sum,
        sum(image_sq_norm order by product_id) as image_sq_norm_sum
    from positives
    group by pair
),

by_section as (
    select
        sectioned.pair,
        sectioned.section_level,
        {{ section_label('sectioned.section') }} as section,
        count(*) as n,
        sum(sectioned.text_embedding order by sectioned.product_id) as text_sum,
        sum(sectioned.positive_dot order by sectioned.product_id) as positive_dot_sum,
        sum(sectioned.text_sq_norm order by sectioned.product_id) as text_sq_norm_sum,
        sum(sectioned.image_sq_norm order by sectioned.product_id) as own_image_sq_norm_sum,
        avg(sectioned.positive_cosine order by sectioned.product_id) as positive_cosine_mean,
        stddev_samp(sectioned.positive_cosine order by sectioned.product_id) as positive_cosine_stddev,
        avg(sectioned.positive_sq_euclidean order by sectioned.product_id) as positive_sq_euclidean_mean,
        stddev_samp(sectioned.positive_sq_euclidean order by sectioned.product_id) as positive_sq_euclidean_stddev,
        -- per cluster bootstrap replicate: the weight and the weighted sums, in product order
        sum(weights.weights order by sectioned.product_id) as weight_sums,
        sum(
            weights.weights
            * array_fill(sectioned.positive_cosine::real, array[vector_dims(weights.weights)])::vector
            order by sectioned.product_id
        ) as cosine_sums,
        sum(
            weights.weights
            * array_fill(sectioned.positive_sq_euclidean::real, array[vector_dims(weights.weights)])::vector
            order by sectioned.product_id
        ) as sq_euclidean_sums
    from sectioned
    inner join weights on sectioned.product_id = weights.product_id
    group by grouping sets (
        (sectioned.pair, sectioned.section_level, sectioned.section), (sectioned.pair, sectioned.section_level)
    )
),

spreads as (
    select
        by_section.pair,
        by_section.section_level,
        by_section.section,
        stddev_samp(resampled.cosine_sum::float8 / nullif(resampled.weight_sum, 0)) as cosine_standard_error,
        stddev_samp(resampled.sq_euclidean_sum::float8 / nullif(resampled.weight_sum, 0))
            as sq_euclidean_standard_error
    from by_section
    cross join
        lateral unnest(
            by_section.weight_sums::real[], by_section.cosine_sums::real[], by_section.sq_euclidean_sums::real[]
        ) as resampled (weight_sum, cosine_sum, sq_euclidean_sum)
    group by by_section.pair, by_section.section_level, by_section.section
),

means as (
    select
        by_section.pair,
        by_section.section_level,
        by_section.section,
        by_section.n,
        by_section.n * (gallery_totals.n_gallery - 1) as n_negative_pairs,
        by_section.positive_cosine_mean,
        by_section.positive_cosine_stddev,
        by_section.positive_sq_euclidean_mean,
        by_section.positive_sq_euclidean_stddev,
        spreads.cosine_standard_error,
        spreads.sq_euclidean_standard_error,
        (-(by_section.text_sum <#> gallery_totals.image_sum) - by_section.positive_dot_sum)
        / nullif(by_section.n * (gallery_totals.n_gallery - 1), 0) as negative_cosine_mean,
        (
            (gallery_totals.n_gallery - 1) * by_section.text_sq_norm_sum
            + by_section.n * gallery_totals.image_sq_norm_sum - by_section.own_image_sq_norm_sum
            - 2 * (-(by_section.text_sum <#> gallery_totals.image_sum) - by_section.positive_dot_sum)
        ) / nullif(by_section.n * (gallery_totals.n_gallery - 1), 0) as negative_sq_euclidean_mean
    from by_section
    inner join gallery_totals on by_section.pair = gallery_totals.pair
    left join spreads
        on
            by_section.pair = spreads.pair
            and by_section.section_level = spreads.section_level
            and by_section.section = spreads.section
),

tidy as (
    select
        means.pair,
        means.section_level,
        means.section,
        metrics.metric,
        metrics.value,
        means.n,
        metrics.n_pairs,
        case when metrics.ci_low_independent is not null then
                least(metrics.ci_low_independent, metrics.value - {{ z }} * coalesce(metrics.standard_error, 0))
        end as ci_low,
        case when metrics.ci_high_independent is not null then
                greatest(metrics.ci_high_independent, metrics.value + {{ z }} * coalesce(metrics.standard_error, 0))
        end as ci_high,
        case
            when metrics.ci_low_independent is not null then {{ sql_string(cluster_interval_method()) }}
        end::text as interval_method,
        metrics.ci_low_independent,
        metrics.ci_high_independent
    from means
    cross join lateral (
        values
        (
            'cosine_positive_mean', means.positive_cosine_mean, means.n,
            {{ mean_ci_bound('means.positive_cosine_mean', 'means.positive_cosine_stddev', 'means.n', 'low') }},
            {{ mean_ci_bound('means.positive_cosine_mean', 'means.positive_cosine_stddev', 'means.n', 'high') }},
            means.cosine_standard_error
        ),
        ('cosine_negative_mean', means.negative_cosine_mean, means.n_negative_pairs, null, null, null),
        ('cosine_gap', means.positive_cosine_mean - means.negative_cosine_mean, means.n, null, null, null),
        (
            'sq_euclidean_positive_mean', means.positive_sq_euclidean_mean, means.n,
            {{ mean_ci_bound('means.positive_sq_euclidean_mean', 'means.positive_sq_euclidean_stddev', 'means.n', 'low') }},
            {{ mean_ci_bound('means.positive_sq_euclidean_mean', 'means.positive_sq_euclidean_stddev', 'means.n', 'high') }},
            means.sq_euclidean_standard_error
        ),
        ('sq_euclidean_negative_mean', means.negative_sq_euclidean_mean, means.n_negative_pairs, null, null, null),
        ('sq_euclidean_gap', means.negative_sq_euclidean_mean - means.positive_sq_euclidean_mean, means.n, null, null, null)
    ) as metrics (metric, value, n_pairs, ci_low_independent, ci_high_independent, standard_error)
),

-- ALL rows: the macro average (the mean of the level's section rows) and
-- how many sections it averages, beside value, the micro average
final as (
    select
        *,
        case when section = 'ALL' then
                avg(value) filter (where section <> 'ALL') over sections_in_order
        end as macro_value,
        case when section = 'ALL' then
                count(*) filter (where section <> 'ALL') over sections_in_order
        end as n_sections,
        now() as computed_at
    from tidy
    window sections_in_order as (
        partition by pair, section_level, metric order by section
        rows between unbounded preceding and unbounded following
    )
)

select * from final
