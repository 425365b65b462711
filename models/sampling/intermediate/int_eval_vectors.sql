{{ config(post_hook="{{ index_vectors_by_space(this, paired_space_names()) }}") }}

{#- The eval sample's vectors in every paired space, stored inline and
    indexed per space with HNSW (vector_cosine_ops). Every sampled product
    has a valid vector in each of them (int_eval_candidates). -#}
with

sample as (
    select * from {{ ref('int_eval_sample') }}
),

valid_vectors as (
    select * from {{ ref('int_vectors_validated') }}
    where is_valid
),

final as (
    select
        valid_vectors.space,
        sample.product_id,
        sample.collection_section,
        sample.duplicate_group_id,
        valid_vectors.embedding
    from sample
    inner join valid_vectors on sample.product_id = valid_vectors.product_id
    where {{ in_list('valid_vectors.space', paired_space_names()) }}
)

select * from final
