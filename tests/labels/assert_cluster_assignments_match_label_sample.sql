{{ config(severity='error') }}

-- KMeans runs whose products are not exactly the label sample: the sample or
-- the vectors changed after `embed-udfs cluster` ran, so ARI and NMI would
-- score a stale clustering. Fix: rerun `embed-udfs cluster` (or `embed-udfs
-- refresh`), then `dbt build`.
with

scores as (
    select * from {{ ref('int_kmeans_scores') }}
),

stale as (
    select
        space,
        reduction,
        seed,
        n_labelled,
        n_items as n_labelled_and_clustered,
        n_assigned as n_clustered
    from scores
    where
        replicate = 0
        and (n_items <> n_labelled or n_assigned <> n_labelled)
)

select * from stale
