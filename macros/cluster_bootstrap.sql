{#- The cluster bootstrap behind every interval on a mean over queries or
    products: which clustering it resamples, and each product's weights. -#}

{#- The column of the products table whose values are the resampled
    clusters (vars.bootstrap_cluster_column), or none: the near-duplicate
    group. -#}
{% macro bootstrap_cluster_column() %}
    {%- set column = var('bootstrap_cluster_column', none) -%}
    {%- if column is not none and (column is not string or not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', column)) -%}
        {{ exceptions.raise_compiler_error(
            "vars.bootstrap_cluster_column is " ~ column ~ "; name a column of the products table"
            ~ " (letters, digits and _), e.g. store_name, or null to resample near-duplicate groups."
        ) }}
    {%- endif -%}
    {{ return(column) }}
{% endmacro %}


{#- What an interval says about how it was resampled, e.g.
    `cluster bootstrap (duplicate_group), 200 replicates, se`. -#}
{% macro cluster_interval_method(kind='se') -%}
    {%- set column = bootstrap_cluster_column() -%}
    {{ return("cluster bootstrap (" ~ (column if column else 'duplicate_group') ~ "), "
        ~ bootstrap_replicates() ~ " replicates, " ~ kind) }}
{%- endmacro %}


{#- One row per product of `products` (a relation or subquery with a
    product_id column): its cluster and its Poisson bootstrap weights, a
    vector(B). Every product of a cluster shares one draw per replicate, from
    md5(bootstrap_seed, cluster_id, replicate) (macro
    poisson_bootstrap_weight), so a resample keeps or drops whole clusters,
    the same replicate is the same resample in every model (paired), and a
    product alone in its cluster (cluster_id = product_id) keeps the weights
    it would have had as a product. -#}
{% macro cluster_bootstrap_weights(products) %}
{%- set replicates = bootstrap_replicates() %}
    select
        weighted_products.product_id,
        clusters.cluster_id,
        cluster_weights.weights
    from (select distinct product_id from {{ products }}) as weighted_products
    inner join {{ ref('int_bootstrap_clusters') }} as clusters
        on weighted_products.product_id = clusters.product_id
    inner join (
        select
            drawn.cluster_id,
            array_agg(
                ({{ poisson_bootstrap_weight('drawn.cluster_id', 'replicate') }})::real order by replicate
            )::vector({{ replicates }}) as weights
        from (
            select distinct int_bootstrap_clusters.cluster_id
            from {{ products }} as listed
            inner join {{ ref('int_bootstrap_clusters') }} as int_bootstrap_clusters
                on listed.product_id = int_bootstrap_clusters.product_id
        ) as drawn
        cross join generate_series(1, {{ replicates }}) as replicate
        group by drawn.cluster_id
    ) as cluster_weights
        on clusters.cluster_id = cluster_weights.cluster_id
{% endmacro %}
