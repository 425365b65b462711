{{ config(severity='warn') }}

-- Duplicate groups that chains of links have grown past 100 products and past
-- 1% of the catalog. Copies of one product rarely number that many: such a group
-- is usually near-duplicate links chaining distinct products together, which
-- means vars.near_duplicate_max_distance is too loose for the space marked
-- near_duplicates: true. Every member but the representative leaves the eval
-- sample (vars.eval_dedup), so the sample loses whole sections of the catalog.
-- Fix: lower vars.near_duplicate_max_distance (docs/cleaning-dedup-sampling.md
-- shows how to read the distances), then `embed-udfs refresh`.
with

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

catalog as (
    select count(*) as products from groups
),

sizes as (
    select
        duplicate_group_id,
        max(group_size) as group_size,
        string_agg(distinct reason, ', ' order by reason) as reasons,
        max(near_duplicate_distance) as largest_near_duplicate_distance
    from groups
    group by duplicate_group_id
),

final as (
    select
        sizes.duplicate_group_id,
        sizes.group_size,
        round(100.0 * sizes.group_size / catalog.products, 1) as percent_of_catalog,
        sizes.reasons,
        sizes.largest_near_duplicate_distance
    from sizes
    cross join catalog
    where sizes.group_size > greatest(100, 0.01 * catalog.products)
)

select * from final
