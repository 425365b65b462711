with

runs as (
    select * from {{ source('clusters', 'cluster_runs') }}
),

final as (
    select
        space,
        reduction,
        dims,
        seed,
        n_products,
        n_clusters,
        explained_variance,
        inertia,
        n_iter,
        clustered_at
    from runs
)

select * from final
