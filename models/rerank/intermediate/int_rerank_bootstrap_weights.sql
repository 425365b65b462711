{#- Poisson bootstrap weights of every reranked query product, drawn exactly
    as int_bootstrap_weights draws them (macros/label_metrics.sql), so a
    product has the same weights here and in the label metrics. The same
    weights serve before and after reranking, which makes the uplift
    interval paired. -#}
{{ poisson_bootstrap_weights(ref('int_rerank_candidates'), 'query_product_id') }}
