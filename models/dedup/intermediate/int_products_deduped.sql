{#- One row per duplicate group: the group's representative (see
    int_duplicate_groups). Products without a duplicate are their own group.
    The eval sample is drawn from here when vars.eval_dedup is true. -#}

with

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

final as (
    select
        product_id,
        collection_section,
        is_section_missing,
        duplicate_group_id,
        group_size
    from groups
    where is_representative
)

select * from final
