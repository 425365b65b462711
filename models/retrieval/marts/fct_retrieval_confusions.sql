{{ config(enabled=family_enabled('retrieval')) }}
{#- Which sections retrieve which: per pair and direction, how many queries
    of each section got their first item (neighbour_rank 1 in
    int_retrieval_neighbours) from each section, as a count and a share of
    the query section's queries. The diagonal is the section retrieving
    itself; each query section's shares add up to 1. -#}

with

neighbours as (
    select * from {{ ref('int_retrieval_neighbours') }}
    where neighbour_rank = 1
),

section_sizes as (
    select
        pair,
        direction,
        collection_section,
        count(*) as n_queries
    from neighbours
    group by pair, direction, collection_section
),

counted as (
    select
        pair,
        direction,
        collection_section,
        neighbour_section,
        count(*) as n_retrieved
    from neighbours
    group by pair, direction, collection_section, neighbour_section
),

final as (
    select
        counted.pair,
        counted.direction,
        counted.collection_section as query_section,
        counted.neighbour_section as retrieved_section,
        counted.n_retrieved::integer as n_retrieved,
        section_sizes.n_queries::integer as n_queries,
        counted.n_retrieved::float8 / section_sizes.n_queries as share_of_queries,
        counted.collection_section = counted.neighbour_section as is_same_section
    from counted
    inner join section_sizes
        on
            counted.pair = section_sizes.pair
            and counted.direction = section_sizes.direction
            and counted.collection_section = section_sizes.collection_section
)

select * from final
