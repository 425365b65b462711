{{ config(materialized='view') }}

{#- Every eval query's top max(K) neighbours in the whole-catalog gallery,
    both directions of every pair: the catalog-scope twin of
    int_retrieval_neighbours, which fct_retrieval_ranks and
    fct_retrieval_scores read beside it. -#}

with

text_to_image as (
    select * from {{ ref('int_catalog_text_to_image_neighbours') }}
),

image_to_text as (
    select * from {{ ref('int_catalog_image_to_text_neighbours') }}
),

final as (
    select * from text_to_image
    union all
    select * from image_to_text
)

select * from final
