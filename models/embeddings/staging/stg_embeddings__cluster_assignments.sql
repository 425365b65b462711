with

assignments as (
    {{ job_output(source('clusters', 'cluster_assignments'), {'space': 'text', 'reduction': 'text', 'dims': 'integer', 'seed': 'integer', 'product_id': 'text', 'cluster': 'integer'}) }}
),

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
