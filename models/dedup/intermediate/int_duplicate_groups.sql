{#- Every product with its duplicate group. Groups are the connected
    components of int_duplicate_pairs (int_duplicate_components): two products
    are in one group when a chain of exact or near-duplicate links joins them
    (exact duplicates are transitive anyway; for near duplicates a tight
    threshold keeps chains short, group_size shows any that grow, and the warn
    test assert_duplicate_groups_stay_small names them). duplicate_group_id is the
    smallest product_id in the group, so it does not move when the
    representative does. The representative is the first member in a stable
    order: products with a valid vector in every paired space first (so the
    group stays in the eval sample), then by product_id. -#}
{%- set spaces = paired_space_names() %}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

pairs as (
    select * from {{ ref('int_duplicate_pairs') }}
),

linked as (
    select * from {{ ref('int_duplicate_components') }}
),

components as (
    select
        product_id,
        duplicate_group_id,
        count(*) over (partition by duplicate_group_id) as group_size
    from linked
),

link_ends as (
    select
        product_id,
        link_type,
        distance
    from pairs
    union all
    select
        duplicate_id as product_id,
        link_type,
        distance
    from pairs
),

links as (
    select
        product_id,
        string_agg(distinct link_type, '+' order by link_type) as reason,
        min(distance) filter (where link_type = 'near_duplicate') as near_duplicate_distance
    from link_ends
    group by product_id
),

evaluable as (
    {%- if spaces %}
        {{ products_with_valid_vectors(spaces) }}
    {%- else %}
        select product_id from products
    {%- endif %}
),

grouped as (
    select
        products.product_id,
        products.collection_section,
        products.is_section_missing,
        coalesce(components.duplicate_group_id, products.product_id) as duplicate_group_id,
        coalesce(components.group_size, 1)::integer as group_size,
        evaluable.product_id is not null as is_evaluable,
        coalesce(links.reason, 'unique') as reason,
        links.near_duplicate_distance
    from products
    left join components on products.product_id = components.product_id
    left join links on products.product_id = links.product_id
    left join evaluable on products.product_id = evaluable.product_id
),

ordered as (
    select
        *,
        first_value(product_id) over (
            partition by duplicate_group_id
            order by is_evaluable desc, product_id asc
        ) as representative_id
    from grouped
),

final as (
    select
        product_id,
        collection_section,
        is_section_missing,
        duplicate_group_id,
        group_size,
        product_id = representative_id as is_representative,
        representative_id,
        reason,
        near_duplicate_distance,
        is_evaluable
    from ordered
)

select * from final
