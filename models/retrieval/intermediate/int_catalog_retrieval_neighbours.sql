{{ config(materialized='view') }}

{#- Every eval query's top max(K) neighbours in the whole-catalog gallery,
    both directions of every pair: the catalog-scope twin of
    int_retrieval_neighbours, which fct_retrieval_ranks and
    fct_retrieval_scores read beside it: the columns of the sample's lists
    (not the lists' own bookkeeping, lists_state). -#}

with

text_to_image as (
    select * from {{ ref('int_catalog_text_to_image_neighbours') }}
),

image_to_text as (
    select * from {{ ref('int_catalog_image_to_text_neighbours') }}
),

final as (
    {%- for direction in ['text_to_image', 'image_to_text'] %}
        select {{ retrieval_list_columns() }}
        from {{ direction }}
        {{ "union all" if not loop.last }}
    {%- endfor %}
)

select * from final
