{{ config(enabled=family_enabled('retrieval')) }}
{#- Each sampled product's duplicate group members wherever they are in the
    catalog (int_duplicate_groups), for the whole-catalog neighbour lists
    (int_catalog_*_neighbours), where a duplicate of the positive may be any
    catalog product; int_eval_duplicate_sets is the same within the sample. -#}
with

sampled as (
    select * from {{ ref('int_eval_sample') }}
),

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

-- each sampled product's duplicate group members, wherever they are in the catalog
duplicate_sets as (
    select
        sampled.product_id,
        array_agg(members.product_id order by members.product_id) as duplicate_ids
    from sampled
    inner join groups as own on sampled.product_id = own.product_id
    inner join groups as members
        on
            own.duplicate_group_id = members.duplicate_group_id
            and own.product_id <> members.product_id
    group by sampled.product_id
)

select * from duplicate_sets
