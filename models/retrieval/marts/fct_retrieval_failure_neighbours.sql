{{ config(enabled=family_enabled('retrieval')) }}
{#- What each failed query retrieved instead: the first
    failure_list_length() items of its list in int_retrieval_neighbours,
    with their products' names, sections and images, and whether each is the
    positive or a near-duplicate of it (another member of the positive's
    int_duplicate_groups group: a miss that is no real error). Only queries
    whose positive is not first (fct_retrieval_failures.is_failure). -#}

with

failures as (
    select * from {{ ref('fct_retrieval_failures') }}
    where is_failure
),

neighbours as (
    select * from {{ ref('int_retrieval_neighbours') }}
    where neighbour_rank <= {{ failure_list_length() }}
),

products as (
    select * from {{ ref('stg_catalog__products') }}
),

final as (
    select
        failures.pair,
        failures.direction,
        failures.query_product_id,
        failures.collection_section,
        failures.worst_order,
        neighbours.neighbour_rank,
        neighbours.neighbour_product_id,
        products.product_name as neighbour_name,
        products.store_name as neighbour_store_name,
        products.image_uri as neighbour_image_uri,
        neighbours.neighbour_section,
        neighbours.distance,
        neighbours.is_positive,
        neighbours.is_duplicate_of_positive,
        neighbours.neighbour_section = failures.collection_section as is_same_section
    from failures
    inner join neighbours
        on
            failures.pair = neighbours.pair
            and failures.direction = neighbours.direction
            and failures.query_product_id = neighbours.query_product_id
    left join products on neighbours.neighbour_product_id = products.product_id
)

select * from final
