{{ config(severity='error') }}

-- KMeans runs whose products are not exactly the label sample: the sample or
-- the vectors changed after `embed-udfs cluster` ran, so ARI and NMI would
-- score a stale clustering. Fix: rerun `embed-udfs cluster` (or `embed-udfs
-- refresh`), then `dbt build`.
with

assignments as (
    select * from {{ ref('stg_embeddings__cluster_assignments') }}
),

labelled as (
    select * from {{ ref('int_label_vectors') }}
),

runs as (
    select distinct
        space,
        reduction,
        seed
    from assignments
    where space in (select distinct space from labelled)
),

expected as (
    select
        runs.space,
        runs.reduction,
        runs.seed,
        labelled.product_id
    from runs
    inner join labelled on runs.space = labelled.space
),

present as (
    select
        assignments.space,
        assignments.reduction,
        assignments.seed,
        assignments.product_id
    from assignments
    inner join runs
        on
            assignments.space = runs.space
            and assignments.reduction = runs.reduction
            and assignments.seed = runs.seed
),

mismatched as (
    select
        coalesce(expected.space, present.space) as space,
        coalesce(expected.reduction, present.reduction) as reduction,
        coalesce(expected.seed, present.seed) as seed,
        count(*) filter (where present.product_id is null) as n_sampled_not_clustered,
        count(*) filter (where expected.product_id is null) as n_clustered_not_sampled
    from expected
    full outer join present
        on
            expected.space = present.space
            and expected.reduction = present.reduction
            and expected.seed = present.seed
            and expected.product_id = present.product_id
    where expected.product_id is null or present.product_id is null
    group by 1, 2, 3
)

select * from mismatched
