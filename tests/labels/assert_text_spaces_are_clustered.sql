{{ config(severity='warn') }}

-- Text spaces of the label sample with no KMeans run for one of the
-- configured seeds: fct_label_metrics lacks (some of) their ARI and NMI.
-- Fix: run `embed-udfs cluster` (`embed-udfs refresh` runs it), then `dbt build`.
{%- set seeds = label_kmeans_seeds() %}

with

labelled as (
    select
        space,
        count(*) as n_products
    from {{ ref('int_label_vectors') }}
    group by space
),

runs as (
    select * from {{ ref('stg_embeddings__cluster_runs') }}
),

missing as (
    select
        labelled.space,
        configured.seed
    from labelled
    cross join unnest(array[{{ seeds | join(', ') }}]::integer[]) as configured (seed)
    where not exists (
            select 1
            from runs
            where runs.space = labelled.space and runs.seed = configured.seed
        )
)

select * from missing
