with

assignments as (
    select * from {{ source('clusters', 'cluster_assignments') }}
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
