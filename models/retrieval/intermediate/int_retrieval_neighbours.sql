{{ config(enabled=family_enabled('retrieval'), materialized='view') }}

{#- Every query's top max(K) neighbours, both directions of every pair: the
    list that rank-based metrics (fct_retrieval_ranks), list-based metrics
    (fct_retrieval_scores) and stage-2 rerankers read. A view over the two
    per-direction tables, which dbt builds concurrently. -#}

with

text_to_image as (
    select * from {{ ref('int_text_to_image_neighbours') }}
),

image_to_text as (
    select * from {{ ref('int_image_to_text_neighbours') }}
),

final as (
    select * from text_to_image
    union all
    select * from image_to_text
)

select * from final
