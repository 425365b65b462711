{{ config(post_hook=["{{ propagate_component_labels(this, ref('int_duplicate_pairs')) }}"]) }}

{#- The connected components of int_duplicate_pairs, one row per linked
    product: duplicate_group_id is the smallest product_id that a chain of
    links reaches. The select seeds each product with the smallest id among
    itself and its direct links; the post_hook (macros/dedup.sql,
    propagate_component_labels) then spreads the smallest label along the
    links, with pointer jumping, until nothing changes. Each round costs one
    pass over the links, and the rounds grow with the logarithm of a chain's
    length, so a group chained across thousands of products stays cheap (a
    transitive closure would list every pair of its members). -#}

with

pairs as (
    select * from {{ ref('int_duplicate_pairs') }}
),

link_ends as (
    select
        product_id,
        duplicate_id as linked_id
    from pairs
    union all
    select
        duplicate_id as product_id,
        product_id as linked_id
    from pairs
),

final as (
    select
        product_id,
        least(product_id, min(linked_id)) as duplicate_group_id
    from link_ends
    group by product_id
)

select * from final
