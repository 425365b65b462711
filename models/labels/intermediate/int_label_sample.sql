{#- The label sample: the sampled rows of int_label_candidates, balanced per
    section, free of duplicates (vars.eval_dedup) and deterministic for
    vars.eval_seed; it depends on the text spaces only. -#}
with

candidates as (
    select * from {{ ref('int_label_candidates') }}
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
