{{ config(post_hook="{{ index_vectors_by_space(this, label_space_names()) }}") }}

{#- The label sample's products (int_label_sample: drawn on the text spaces
    alone, so a failed image does not remove a product, and every sampled
    product has a valid vector in each text space) that have a section, with
    their vectors in every text space, stored inline and indexed per space
    with HNSW (vector_cosine_ops). Every space is scored on the same
    products, so their label metrics compare on the same rows. Products
    without a section (`unknown`) are left out: the label is what is scored,
    and theirs is missing. Each product carries its duplicate group, which
    its 1-NN search excludes. The rows are stored in product_id order (each
    product's spaces in configuration order): the order the label figures
    have always been computed in, which the single-precision vector sums
    behind them and the KMeans contingency sums follow. -#}
{{ sample_vectors(
    ref('int_label_sample'), label_space_names(), where='not is_section_missing', product_order=true
) }}
