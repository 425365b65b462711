{{ config(enabled=family_enabled('labels')) }}
{#- Poisson bootstrap weights of every product of the label sample
    (macro poisson_bootstrap_weight: the same draws as int_rerank_bootstrap_weights,
    so a product has the same weights in every space and metric). -#}
{%- set replicates = bootstrap_replicates() %}

with

weighted_products as (
    select distinct product_id
    from {{ ref('int_label_vectors') }}
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
