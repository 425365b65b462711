{{ config(post_hook="{{ index_vectors_by_space(this, paired_space_names()) }}") }}

{#- The eval sample's vectors in every paired space, stored inline and
    indexed per space with HNSW (vector_cosine_ops). Every sampled product
    has a valid vector in each of them (int_eval_candidates). -#}
{{ sample_vectors(ref('int_eval_sample'), paired_space_names()) }}
