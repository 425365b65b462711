{{ config(enabled=family_enabled('retrieval')) }}
-- A section's worst queries with what each retrieved instead: for one pair,
-- direction and section, the queries whose positive ranked furthest down
-- (fct_retrieval_failures.worst_order), each followed by its first 5 items
-- (fct_retrieval_failure_neighbours) with distances, sections and whether an
-- item is the positive or a near-duplicate of it. Pick them with --vars, e.g.
--   dbt compile --select worst_queries \
--     --vars '{worst_pair: minilm_clip, worst_direction: text_to_image, worst_section: Lighting}'
-- then run target/compiled/.../worst_queries.sql in psql. Without a section it
-- takes the pair and direction's weakest by R@10 (fct_retrieval_metrics).
{%- set pair = var('worst_pair', none) %}
{%- set direction = var('worst_direction', none) or 'text_to_image' %}
{%- set section = var('worst_section', none) %}
{%- set shown = 5 %}

with

metrics as (
    select * from {{ ref('fct_retrieval_metrics') }}
),

failures as (
    select * from {{ ref('fct_retrieval_failures') }}
),

neighbours as (
    select * from {{ ref('fct_retrieval_failure_neighbours') }}
),

weakest as (
    select
        pair,
        direction,
        section
    from metrics
    where
        metric = 'recall_at_10'
        and section <> 'ALL'
        and direction = {{ sql_string(direction) }}
        and pair = {{ sql_string(pair) if pair is not none else 'pair' }}
    order by value asc, n desc, section asc
    limit 1
),

chosen as (
    {%- if section is not none %}
        select
            pair,
            direction,
            {{ sql_string(section) }}::text as section
        from weakest
    {%- else %}
        select * from weakest
    {%- endif %}
),

worst as (
    select failures.*
    from failures
    inner join chosen
        on
            failures.pair = chosen.pair
            and failures.direction = chosen.direction
            and failures.collection_section = chosen.section
    where failures.is_failure and failures.worst_order <= {{ shown }}
),

final as (
    select
        worst.pair,
        worst.direction,
        worst.collection_section,
        worst.worst_order,
        worst.query_product_id,
        worst.query_name,
        worst.positive_rank,
        worst.dedup_tolerant_rank,
        neighbours.neighbour_rank,
        neighbours.neighbour_product_id,
        neighbours.neighbour_name,
        neighbours.neighbour_section,
        neighbours.distance,
        neighbours.is_positive,
        neighbours.is_duplicate_of_positive
    from worst
    left join neighbours
        on
            worst.pair = neighbours.pair
            and worst.direction = neighbours.direction
            and worst.query_product_id = neighbours.query_product_id
)

select * from final
order by worst_order, neighbour_rank
