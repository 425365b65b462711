{{ config(enabled=family_enabled('ann_tuning'), materialized='view') }}

{#- The galleries and queries `embed-udfs tune` measures: the eval sample's
    vectors in every paired space (int_eval_vectors), under an enforced
    contract that the tune exposure names. -#}

with

eval_vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

final as (
    select
        space,
        product_id,
        collection_section,
        embedding
    from eval_vectors
)

select * from final
