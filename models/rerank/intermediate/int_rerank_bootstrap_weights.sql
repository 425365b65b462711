{{ config(enabled=family_enabled('rerank')) }}
{#- Poisson bootstrap weights of every reranked query product, drawn exactly
    as int_bootstrap_weights draws them (macro poisson_bootstrap_weight), so a
    product has the same weights here and in the label metrics. The same
    weights serve before and after reranking, which makes the uplift
    interval paired. -#}
{%- set replicates = bootstrap_replicates() %}

with

weighted_products as (
    select distinct query_product_id as product_id
    from {{ ref('int_rerank_candidates') }}
),

-- each product's multiplicity in each of B resamples
draws as (
    select
        weighted_products.product_id,
        replicate,
        {{ poisson_bootstrap_weight('weighted_products.product_id', 'replicate') }} as multiplicity
    from weighted_products
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
