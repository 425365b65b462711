{#- The eval sample (the gallery): the sampled rows of int_eval_candidates,
    balanced per section, free of duplicates (vars.eval_dedup) and
    deterministic for vars.eval_seed. -#}
with

candidates as (
    select * from {{ ref('int_eval_candidates') }}
),

final as (
    select
        product_id,
        collection_section,
        is_section_missing,
        duplicate_group_id,
        section_rank,
        sample_rank
    from candidates
    where is_sampled
)

select * from final
