{#- Every product with the cluster the interval bootstrap resamples: its
    near-duplicate group, or its value of vars.bootstrap_cluster_column. -#}
{%- set cluster_column = bootstrap_cluster_column() %}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

final as (
    select
        products.product_id,
        {%- if cluster_column %}
        coalesce({{ sql_string(cluster_column ~ '=') }} || products.bootstrap_cluster_value, products.product_id)
            as cluster_id,
        {{ sql_string(cluster_column) }}::text as clustering
        {%- else %}
        coalesce(groups.duplicate_group_id, products.product_id) as cluster_id,
        'duplicate_group'::text as clustering
        {%- endif %}
    from products
    left join groups on products.product_id = groups.product_id
)

select * from final
