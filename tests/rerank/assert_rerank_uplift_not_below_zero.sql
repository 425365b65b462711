{{ config(severity=var('rerank_uplift_severity', 'warn')) }}

{#- A reranker that makes a figure worse beyond doubt: the 95% interval of
    its uplift lies wholly below zero. Warns by default; set
    vars.rerank_uplift_severity: error to fail the build. -#}
select
    reranker,
    pair,
    direction,
    section,
    metric,
    difference,
    ci_low,
    ci_high,
    n
from {{ ref('fct_rerank_uplift') }}
where ci_high < 0
