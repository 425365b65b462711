{#- Poisson bootstrap weights of every reranked query product: a vector(B)
    of Poisson(1) multiplicities, drawn from md5(bootstrap_seed, product_id,
    replicate) exactly as int_bootstrap_weights draws them, so a product has
    the same weights here and in the label metrics. The same weights serve
    before and after reranking, which makes the uplift interval paired. -#}
{%- set replicates = bootstrap_replicates() %}

with

products as (
    select distinct query_product_id as product_id
    from {{ ref('int_rerank_candidates') }}
),

draws as (
    select
        products.product_id,
        replicate,
        {{ poisson_one(hash_uniform(
            "'" ~ var('bootstrap_seed', 42) ~ ":' || products.product_id || ':' || replicate"
        )) }} as multiplicity
    from products
    cross join generate_series(1, {{ replicates }}) as replicate
),

final as (
    select
        product_id,
        array_agg(multiplicity::real order by replicate)::vector({{ replicates }}) as weights
    from draws
    group by product_id
)

select * from final
