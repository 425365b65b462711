{{ config(enabled=family_enabled('labels')) }}
{#- ARI and NMI of every KMeans run (space, reduction, seed) against
    collection_section, on the label sample (replicate 0) and on each Poisson
    bootstrap resample (replicates 1..B), from the contingency table of
    section x cluster counts. A product drawn w times in a resample counts w
    times, exactly as scikit-learn scores a resampled array.
    ARI (Hubert and Arabie): with index = sum C(n_ij, 2), rows = sum C(a_i, 2),
    cols = sum C(b_j, 2), expected = rows x cols / C(n, 2) and
    max = (rows + cols) / 2, ARI = (index - expected) / (max - expected).
    NMI (arithmetic mean): MI / ((H(sections) + H(clusters)) / 2), natural
    logs; MI = (sum n_ij ln n_ij + n ln n - sum a_i ln a_i - sum b_j ln b_j) / n. -#}

with

assignments as (
    select * from {{ ref('stg_embeddings__cluster_assignments') }}
),

labelled as (
    select
        space,
        product_id,
        collection_section
    from {{ ref('int_label_vectors') }}
),

weights as (
    select * from {{ ref('int_bootstrap_weights') }}
),

run_sizes as (
    -- every assignment of a run, in or out of the current label sample
    select
        space,
        reduction,
        seed,
        count(*) as n_assigned
    from assignments
    group by space, reduction, seed
),

sample_sizes as (
    select
        space,
        count(*) as n_labelled
    from labelled
    group by space
),

cells as (
    select
        assignments.space,
        assignments.reduction,
        assignments.dims,
        assignments.seed,
        labelled.collection_section,
        assignments.cluster,
        count(*)::float8 as n_items,
        sum(weights.weights) as replicate_counts
    from assignments
    inner join labelled
        on
            assignments.space = labelled.space
            and assignments.product_id = labelled.product_id
    inner join weights on assignments.product_id = weights.product_id
    group by
        assignments.space, assignments.reduction, assignments.dims, assignments.seed,
        labelled.collection_section, assignments.cluster
),

cell_counts as (
    -- replicate 0 is the label sample itself, 1..B the resamples
    select
        space,
        reduction,
        dims,
        seed,
        collection_section,
        cluster,
        0 as replicate,
        n_items
    from cells

    union all

    select
        cells.space,
        cells.reduction,
        cells.dims,
        cells.seed,
        cells.collection_section,
        cells.cluster,
        resampled.replicate::integer as replicate,
        resampled.n_items::float8 as n_items
    from cells
    cross join lateral unnest(cells.replicate_counts::real[]) with ordinality as resampled (n_items, replicate)
    where resampled.n_items > 0
),

grouped as (
    -- cells, section totals a_i and cluster totals b_j, in one pass
    select
        space,
        reduction,
        seed,
        replicate,
        grouping(collection_section, cluster) as grouping_level,
        max(dims) as dims,
        sum(n_items) as n_items
    from cell_counts
    group by grouping sets (
        (space, reduction, seed, replicate, collection_section, cluster),
        (space, reduction, seed, replicate, collection_section),
        (space, reduction, seed, replicate, cluster)
    )
),

totals as (
    -- grouping_level 0: a cell; 1: a section (clusters summed); 2: a cluster
    select
        space,
        reduction,
        max(dims) as dims,
        seed,
        replicate,
        sum(n_items) filter (where grouping_level = 0) as n_items,
        count(*) filter (where grouping_level = 1) as n_sections,
        count(*) filter (where grouping_level = 2) as n_clusters,
        sum(n_items * (n_items - 1) / 2) filter (where grouping_level = 0) as agreeing_pairs,
        sum(n_items * (n_items - 1) / 2) filter (where grouping_level = 1) as section_pairs,
        sum(n_items * (n_items - 1) / 2) filter (where grouping_level = 2) as cluster_pairs,
        sum(n_items * ln(n_items)) filter (where grouping_level = 0) as cell_n_log_n,
        sum(n_items * ln(n_items)) filter (where grouping_level = 1) as section_n_log_n,
        sum(n_items * ln(n_items)) filter (where grouping_level = 2) as cluster_n_log_n
    from grouped
    group by space, reduction, seed, replicate
),

scores as (
    select
        *,
        section_pairs * cluster_pairs / nullif(n_items * (n_items - 1) / 2, 0) as expected_pairs,
        greatest(
            0,
            (cell_n_log_n + n_items * ln(n_items) - section_n_log_n - cluster_n_log_n) / n_items
        ) as mutual_information,
        ln(n_items) - section_n_log_n / n_items as section_entropy,
        ln(n_items) - cluster_n_log_n / n_items as cluster_entropy
    from totals
),

final as (
    select
        scores.space,
        scores.reduction,
        scores.dims,
        scores.seed,
        scores.replicate,
        scores.n_items,
        run_sizes.n_assigned,
        sample_sizes.n_labelled,
        scores.n_sections,
        scores.n_clusters,
        case
            -- both partitions trivial (one group, or all singletons): full agreement
            when (scores.section_pairs + scores.cluster_pairs) / 2 - coalesce(scores.expected_pairs, 0) = 0 then 1.0
            else
                (scores.agreeing_pairs - scores.expected_pairs)
                / ((scores.section_pairs + scores.cluster_pairs) / 2 - scores.expected_pairs)
        end::float8 as ari,
        case
            when scores.n_sections = 1 and scores.n_clusters = 1 then 1.0
            when scores.n_sections = 1 or scores.n_clusters = 1 or scores.mutual_information = 0 then 0.0
            else
                scores.mutual_information
                / greatest((scores.section_entropy + scores.cluster_entropy) / 2, 2.220446049250313e-16)
        end::float8 as nmi
    from scores
    inner join run_sizes
        on
            scores.space = run_sizes.space
            and scores.reduction = run_sizes.reduction
            and scores.seed = run_sizes.seed
    inner join sample_sizes on scores.space = sample_sizes.space
)

select * from final
