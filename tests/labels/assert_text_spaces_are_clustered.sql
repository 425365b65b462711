{{ config(severity='warn') }}

-- Text spaces with label metrics but missing KMeans runs (none at all, or
-- fewer seeds than vars.label_kmeans_seeds at some PCA size): their ARI and
-- NMI are missing or rest on fewer runs. Fix: run `embed-udfs cluster`
-- (`embed-udfs refresh` runs it), then `dbt build`.
with

metrics as (
    select * from {{ ref('fct_label_metrics') }}
),

label_spaces as (
    select distinct space
    from metrics
    where metric = 'nn1_accuracy'
),

kmeans_runs as (
    select
        space,
        reduction,
        n_seeds
    from metrics
    where metric = 'kmeans_ari'
),

missing as (
    select
        label_spaces.space,
        kmeans_runs.reduction,
        coalesce(kmeans_runs.n_seeds, 0) as n_seeds,
        {{ label_kmeans_seeds() | length }} as n_seeds_configured
    from label_spaces
    left join kmeans_runs on label_spaces.space = kmeans_runs.space
    where coalesce(kmeans_runs.n_seeds, 0) < {{ label_kmeans_seeds() | length }}
)

select * from missing
