{#- One row per configured embedding space (vars.embed_spaces): what
    produced its vectors, so any figure can be joined to its model, weights,
    recipe and prompt (int_embedding_spaces, from the configuration). -#}
with

spaces as (
    select * from {{ ref('int_embedding_spaces') }}
),

final as (
    select * from spaces
)

select * from final
