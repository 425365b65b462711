{#- Empty until `embed-udfs cluster` has created the table (see
    stg_embeddings__cluster_assignments). -#}
{%- set runs = source('clusters', 'cluster_runs') %}
{%- set exists = execute and adapter.get_relation(
    database=runs.database, schema=runs.schema, identifier=runs.identifier
) is not none %}

with

{% if exists or not execute -%}
    runs as (
        select * from {{ runs }}
    ),
{%- else -%}
runs as (
    select
        null::text as space,
        null::text as reduction,
        null::integer as dims,
        null::integer as seed,
        null::integer as n_products,
        null::integer as n_clusters,
        null::float8 as explained_variance,
        null::float8 as inertia,
        null::integer as n_iter,
        null::timestamptz as clustered_at
    where false
),
{%- endif %}

final as (
    select
        space,
        reduction,
        dims,
        seed,
        n_products,
        n_clusters,
        explained_variance,
        inertia,
        n_iter,
        clustered_at
    from runs
)

select * from final
