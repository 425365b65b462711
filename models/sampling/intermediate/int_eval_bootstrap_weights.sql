{#- Cluster bootstrap weights of every product of the eval sample (the
    retrieval queries), drawn as every other bootstrap model draws them
    (macro cluster_bootstrap_weights): the retrieval intervals of
    fct_retrieval_metrics resample these clusters. -#}

with

final as (
    {{- cluster_bootstrap_weights(ref('int_eval_sample')) }}
)

select * from final
