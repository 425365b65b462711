{#- Every product with the cluster the interval bootstrap resamples: its
    near-duplicate group, or its value of vars.bootstrap_cluster_column. -#}
{%- set cluster_column = bootstrap_cluster_column() %}
{%- if cluster_column %}
    {%- set cluster_id = "coalesce(" ~ sql_string(cluster_column ~ '=')
        ~ " || products.bootstrap_cluster_value, products.product_id)" %}
{%- else %}
    {%- set cluster_id = "coalesce(groups.duplicate_group_id, products.product_id)" %}
{%- endif %}

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
        {{ cluster_id }} as cluster_id,
        {{ sql_string(cluster_column or 'duplicate_group') }}::text as clustering
    from products
    left join groups on products.product_id = groups.product_id
)

select * from final
