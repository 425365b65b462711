with

vectors as (
    select * from {{ source('embeddings', 'vectors') }}
),

final as (
    select
        space,
        product_id::text as product_id,
        embedding,
        vector_dims(embedding) as dims,
        vector_norm(embedding) as norm,
        input_hash,
        model_ref,
        embedded_at
    from vectors
)

select * from final
