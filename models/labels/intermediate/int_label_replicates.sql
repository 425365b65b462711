{{ config(enabled=family_enabled('labels')) }}
{#- Every label metric on the label sample (replicate 0) and on each Poisson
    bootstrap resample (replicates 1..B), per text space, reduction and
    section (and ALL): 1-NN accuracy and mean silhouette are weighted means
    of per-product figures; ARI and NMI are the mean over KMeans seeds.
    Replicate b of a KMeans metric resamples the products (weights b) and the
    seeds (S draws with replacement, from md5(bootstrap_seed, b, draw)), so
    its spread holds both the sampling and the KMeans-initialisation noise.
    The same replicate number means the same resample in every space: the
    differences in fct_space_comparisons are paired. -#}
{%- set replicates = bootstrap_replicates() %}
{%- set seeds = label_kmeans_seeds() %}

with

neighbours as (
    select * from {{ ref('int_label_neighbours') }}
),

silhouettes as (
    select * from {{ ref('int_label_silhouettes') }}
),

weights as (
    select * from {{ ref('int_bootstrap_weights') }}
),

kmeans_scores as (
    select * from {{ ref('int_kmeans_scores') }}
),

label_spaces as (
    select
        space,
        dim
    from {{ ref('int_embedding_spaces') }}
    where modality = 'text'
),

product_figures as (
    select
        space,
        product_id,
        collection_section,
        'nn1_accuracy' as metric,
        case when is_same_section then 1.0 else 0.0 end::float8 as value
    from neighbours

    union all

    select
        space,
        product_id,
        collection_section,
        'silhouette_cosine' as metric,
        silhouette as value
    from silhouettes
    where silhouette is not null
),

product_sums as (
    select
        product_figures.space,
        product_figures.metric,
        case when grouping(product_figures.collection_section) = 1 then 'ALL' else product_figures.collection_section end
            as section,
        count(*) as n_products,
        -- floating-point sums depend on their order: product_id order, whatever the plan
        sum(product_figures.value order by product_figures.product_id) as value_sum,
        sum(weights.weights order by product_figures.product_id) as weight_sums,
        sum(
            weights.weights * array_fill(product_figures.value::real, array[{{ replicates }}])::vector
            order by product_figures.product_id
        ) as weighted_value_sums
    from product_figures
    inner join weights on product_figures.product_id = weights.product_id
    group by grouping sets (
        (product_figures.space, product_figures.metric, product_figures.collection_section),
        (product_figures.space, product_figures.metric)
    )
),

product_metrics as (
    select
        space,
        metric,
        section,
        0 as replicate,
        value_sum / n_products as value,
        n_products
    from product_sums

    union all

    select
        product_sums.space,
        product_sums.metric,
        product_sums.section,
        resampled.replicate::integer as replicate,
        resampled.value_sum::float8 / nullif(resampled.weight_sum, 0) as value,
        product_sums.n_products
    from product_sums
    cross join lateral unnest(
        product_sums.weight_sums::real[], product_sums.weighted_value_sums::real[]
    ) with ordinality as resampled (weight_sum, value_sum, replicate)
),

seed_positions as (
    select
        seed,
        position
    from unnest(array[{{ seeds | join(', ') }}]::integer[]) with ordinality as seeds (seed, position)
),

seed_draws as (
    -- replicate b draws the S seeds with replacement
    select
        draws.replicate,
        seed_positions.seed,
        count(*) as multiplicity
    from (
        select
            replicate,
            1 + floor(
                {{ hash_uniform("'" ~ var('bootstrap_seed', 42) ~ ":seeds:' || replicate || ':' || draw") }}
                * {{ seeds | length }}
            )::integer as position
        from generate_series(1, {{ replicates }}) as replicate
        cross join generate_series(1, {{ seeds | length }}) as draw
    ) as draws
    inner join seed_positions on draws.position = seed_positions.position
    group by draws.replicate, seed_positions.seed

    union all

    -- replicate 0: every seed once
    select
        0 as replicate,
        seed,
        1 as multiplicity
    from seed_positions
),

kmeans_metrics as (
    select
        kmeans_scores.space,
        scores.metric,
        kmeans_scores.reduction,
        max(kmeans_scores.dims) as dims,
        kmeans_scores.replicate,
        sum(seed_draws.multiplicity * scores.value order by kmeans_scores.seed)
        / sum(seed_draws.multiplicity) as value,
        max(kmeans_scores.n_items) filter (where kmeans_scores.replicate = 0) as n_products
    from kmeans_scores
    inner join seed_draws
        on
            kmeans_scores.replicate = seed_draws.replicate
            and kmeans_scores.seed = seed_draws.seed
    cross join
        lateral (
            values ('kmeans_ari', kmeans_scores.ari), ('kmeans_nmi', kmeans_scores.nmi)
        ) as scores (metric, value)
    group by kmeans_scores.space, scores.metric, kmeans_scores.reduction, kmeans_scores.replicate
),

final as (
    select
        product_metrics.space,
        product_metrics.metric,
        'none' as reduction,
        label_spaces.dim as dims,
        product_metrics.section,
        product_metrics.replicate,
        product_metrics.value,
        product_metrics.n_products
    from product_metrics
    inner join label_spaces on product_metrics.space = label_spaces.space

    union all

    select
        kmeans_metrics.space,
        kmeans_metrics.metric,
        kmeans_metrics.reduction,
        kmeans_metrics.dims,
        'ALL' as section,
        kmeans_metrics.replicate,
        kmeans_metrics.value,
        max(kmeans_metrics.n_products) over (
            partition by kmeans_metrics.space, kmeans_metrics.metric, kmeans_metrics.reduction
        ) as n_products
    from kmeans_metrics
    inner join label_spaces on kmeans_metrics.space = label_spaces.space
)

select * from final
