{#- Every leaf section of the catalog at every level of its path: one row
    per (collection_section, section_level). A path "A | B | C" has the
    levels level_1 ("A"), level_2 ("A | B") and leaf ("A | B | C"). The
    catalog's deepest path sets the levels: level_1 .. level_(D-1) and leaf;
    a shorter path keeps its own leaf at the levels below it, so every level
    partitions all products. One-level sections (and no separator) give the
    leaf level only, which is exactly today's sections. The aggregators join
    on collection_section and group by (section_level, section). -#}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

leaves as (
    select distinct
        collection_section,
        {{ section_segments('collection_section') }} as segments
    from products
),

depth as (
    select coalesce(max(cardinality(segments)), 1) as max_depth
    from leaves
),

upper_levels as (
    select
        leaves.collection_section,
        'level_' || levels.level_number as section_level,
        levels.level_number,
        array_to_string(
            leaves.segments[1:least(levels.level_number, cardinality(leaves.segments))],
            {{ sql_string(section_joiner() or '') }}
        ) as section
    from leaves
    cross join depth
    cross join generate_series(1, depth.max_depth - 1) as levels (level_number)
),

leaf_level as (
    select
        leaves.collection_section,
        'leaf' as section_level,
        depth.max_depth as level_number,
        leaves.collection_section as section
    from leaves
    cross join depth
),

final as (
    select * from upper_levels
    union all
    select * from leaf_level
)

select * from final
