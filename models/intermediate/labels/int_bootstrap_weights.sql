{#- Poisson bootstrap weights: for every product of the label sample, its
    multiplicity in each of B resamples, as a vector(B) of Poisson(1) draws
    (the Poisson bootstrap, which approximates resampling N products with
    replacement). Each draw comes from md5(bootstrap_seed, product_id,
    replicate), so it is deterministic, and a product keeps its weights when
    other products join or leave the sample. Every space and metric uses the
    same weights, which makes comparisons between spaces paired. -#}
{%- set replicates = bootstrap_replicates() %}

with

products as (
    select distinct product_id
    from {{ ref('int_label_vectors') }}
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
