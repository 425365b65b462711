with

runs as (
    {{ job_output(source('clusters', 'cluster_runs'), {'space': 'text', 'reduction': 'text', 'dims': 'integer', 'seed': 'integer', 'n_products': 'integer', 'n_clusters': 'integer', 'explained_variance': 'float8', 'inertia': 'float8', 'n_iter': 'integer', 'clustered_at': 'timestamptz'}) }}
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
