{#- One row: whether the products relation holds the demo catalog.
    `embed-udfs demo load` marks the table with a comment that starts
    `embed-metrics demo catalog`, and `embed-udfs load` replaces it; a
    user's own table has none. Thresholds shipped for the demo enforce only
    on the demo catalog (dim_metric_thresholds). -#}
with

origin as (
    select
        coalesce(
            obj_description(
                {{ sql_string(source('catalog', 'products') | string) }}::regclass, 'pg_class'
            ),
            ''
        ) as table_comment
),

final as (
    select
        table_comment,
        table_comment like 'embed-metrics demo catalog%' as is_demo_catalog
    from origin
)

select * from final
