{#- Poisson bootstrap weights of every product of the label sample
    (macros/label_metrics.sql: the same draws as int_rerank_bootstrap_weights,
    so a product has the same weights in every space and metric). -#}
{{ poisson_bootstrap_weights(ref('int_label_vectors')) }}
