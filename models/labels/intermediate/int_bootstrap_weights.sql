{{ config(enabled=family_enabled('labels')) }}
{#- Cluster bootstrap weights of every product of the label sample (macro
    cluster_bootstrap_weights: the same draws as int_rerank_bootstrap_weights
    and int_eval_bootstrap_weights, so a product has the same weights in every
    space and metric, and the products of one cluster share them). -#}

with

final as (
    {{- cluster_bootstrap_weights(ref('int_label_vectors')) }}
)

select * from final
