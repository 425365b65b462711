{{ config(enabled=family_enabled('retrieval')) }}
{#- The rank of every query's positive, strict and dedup-tolerant, counted
    in the query's neighbour list (int_retrieval_neighbours): rank = 1 + the
    items strictly closer than the positive, null when max(K) or more are.
    The list holds the top max(K) in distance order, so fewer than max(K)
    items strictly closer than the positive are all in it: the count is
    exact on the exact path, and on the HNSW path it counts among the items
    the index returned. The tolerant rank counts the items strictly closer
    than the nearer of the positive and its closest duplicate in the
    gallery (another member of its int_duplicate_groups group), so it is
    never worse than the strict rank. -#}
{%- set max_k = max_k() %}
{%- set directions = retrieval_directions() %}

with

vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

neighbours as (
    select * from {{ ref('int_retrieval_neighbours') }}
),

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

sampled_groups as (
    select
        vectors.product_id,
        groups.duplicate_group_id,
        count(*) over (partition by groups.duplicate_group_id) as n_sampled_members
    from (select distinct product_id from vectors) as vectors
    inner join groups on vectors.product_id = groups.product_id
),

shared_groups as (
    select * from sampled_groups
    where n_sampled_members > 1
),

gallery_sizes as (
    select
        space,
        count(*) as n_gallery
    from vectors
    group by space
),

{% for d in directions %}
    {%- set dim = d.query.dim %}
    positives_{{ loop.index }} as (
        select
            queries.product_id,
            queries.collection_section,
            queries.embedding::vector({{ dim }}) <=> positives.embedding::vector({{ dim }}) as positive_distance
        from vectors as queries
        inner join vectors as positives
            on
                queries.product_id = positives.product_id
                and positives.space = {{ sql_string(d.gallery.name) }}
        where queries.space = {{ sql_string(d.query.name) }}
    ),

    -- the distance from each query to the closest duplicate of its positive
    duplicates_{{ loop.index }} as (
        select
            queries.product_id,
            min(shared_groups.n_sampled_members) - 1 as n_gallery_duplicates,
            min(queries.embedding::vector({{ dim }}) <=> members.embedding::vector({{ dim }})) as duplicate_distance
        from vectors as queries
        inner join shared_groups as own on queries.product_id = own.product_id
        inner join shared_groups
            on
                own.duplicate_group_id = shared_groups.duplicate_group_id
                and own.product_id <> shared_groups.product_id
        inner join vectors as members
            on
                shared_groups.product_id = members.product_id
                and members.space = {{ sql_string(d.gallery.name) }}
        where queries.space = {{ sql_string(d.query.name) }}
        group by queries.product_id
    ),

{% endfor %}
queries as (
    {%- for d in directions %}
        select
            {{ sql_string(d.pair) }}::text as pair,
            {{ sql_string(d.direction) }}::text as direction,
            {{ sql_string(d.query.name) }}::text as query_space,
            {{ sql_string(d.gallery.name) }}::text as gallery_space,
            positives.product_id,
            positives.collection_section,
            positives.positive_distance,
            duplicates.duplicate_distance,
            coalesce(duplicates.n_gallery_duplicates, 0)::integer as n_gallery_duplicates
        from positives_{{ loop.index }} as positives
        left join duplicates_{{ loop.index }} as duplicates on positives.product_id = duplicates.product_id
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not directions %}
    {{ empty_relation({
        'pair': 'text', 'direction': 'text', 'query_space': 'text', 'gallery_space': 'text',
        'product_id': 'text', 'collection_section': 'text', 'positive_distance': 'float8',
        'duplicate_distance': 'float8', 'n_gallery_duplicates': 'integer'
    }) }}
    {%- endif %}
),

closer as (
    select
        queries.pair,
        queries.direction,
        queries.product_id,
        count(neighbours.distance) as n_listed,
        count(*) filter (where neighbours.distance < queries.positive_distance) as n_closer,
        count(*) filter (
            where neighbours.distance < least(queries.positive_distance, queries.duplicate_distance)
        ) as n_closer_tolerant
    from queries
    left join neighbours
        on
            queries.pair = neighbours.pair
            and queries.direction = neighbours.direction
            and queries.product_id = neighbours.query_product_id
    group by queries.pair, queries.direction, queries.product_id
),

final as (
    select
        queries.pair,
        queries.direction,
        queries.query_space,
        queries.gallery_space,
        queries.product_id,
        queries.collection_section,
        queries.positive_distance,
        case when closer.n_closer < {{ max_k }} then closer.n_closer + 1 end::integer as positive_rank,
        {%- if exact_search() %}
            gallery_sizes.n_gallery::integer as n_retrieved,
        {%- else %}
        closer.n_listed::integer as n_retrieved,
        {%- endif %}
        case
            when closer.n_closer_tolerant < {{ max_k }} then closer.n_closer_tolerant + 1
        end::integer as dedup_tolerant_rank,
        queries.n_gallery_duplicates
    from queries
    inner join closer
        on
            queries.pair = closer.pair
            and queries.direction = closer.direction
            and queries.product_id = closer.product_id
    inner join gallery_sizes on queries.gallery_space = gallery_sizes.space
)

select * from final
