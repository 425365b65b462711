{{ config(enabled=family_enabled('rerank')) }}
{#- Cluster bootstrap weights of every reranked query product, drawn exactly
    as int_bootstrap_weights draws them (macro cluster_bootstrap_weights), so
    a product has the same weights here and in the label and retrieval
    metrics. The same weights serve before and after reranking, which makes
    the uplift interval paired. -#}

with

candidates as (
    select distinct query_product_id as product_id
    from {{ ref('int_rerank_candidates') }}
),

final as (
    {{- cluster_bootstrap_weights('candidates') }}
)

select * from final
