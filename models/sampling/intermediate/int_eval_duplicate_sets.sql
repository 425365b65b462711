{#- For each sampled product that shares its duplicate group with other
    sampled products, those products. Empty when vars.eval_dedup keeps one
    product per group. A neighbour among them is a duplicate of the positive
    (int_text_to_image_neighbours, int_image_to_text_neighbours). -#}
with

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

sampled as (
    select * from {{ ref('int_eval_sample') }}
),

sampled_groups as (
    select
        sampled.product_id,
        groups.duplicate_group_id
    from sampled
    inner join groups on sampled.product_id = groups.product_id
),

final as (
    select
        own.product_id,
        array_agg(other.product_id order by other.product_id) as duplicate_ids
    from sampled_groups as own
    inner join sampled_groups as other
        on
            own.duplicate_group_id = other.duplicate_group_id
            and own.product_id <> other.product_id
    group by own.product_id
)

select * from final
