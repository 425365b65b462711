{#- Until `embed-udfs cluster` has run once the table does not exist; the
    view is then empty (and a warn test says how to fill it), so that
    `dbt build` still works on a fresh database. -#}
{%- set assignments = source('clusters', 'cluster_assignments') %}
{%- set exists = execute and adapter.get_relation(
    database=assignments.database, schema=assignments.schema, identifier=assignments.identifier
) is not none %}

with

{% if exists or not execute -%}
    assignments as (
        select * from {{ assignments }}
    ),
{%- else -%}
assignments as (
    select
        null::text as space,
        null::text as reduction,
        null::integer as dims,
        null::integer as seed,
        null::text as product_id,
        null::integer as cluster
    where false
),
{%- endif %}

final as (
    select
        space,
        reduction,
        dims,
        seed,
        product_id::text as product_id,
        cluster
    from assignments
)

select * from final
