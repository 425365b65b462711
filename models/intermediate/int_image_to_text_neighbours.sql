{{ config(pre_hook="{{ retrieval_search_settings(ref('int_eval_vectors'), 'image_to_text') }}") }}

{#- The image_to_text half of int_retrieval_neighbours: each query's top max(K)
    gallery items (macro nearest_neighbours). One model per direction so that
    dbt runs the two searches concurrently. -#}
{%- set directions = retrieval_directions() | selectattr('direction', 'equalto', 'image_to_text') | list %}

with

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

sampled as (
    select * from {{ ref('int_eval_sample') }}
),

-- for each sampled product that shares its duplicate group with other
-- sampled products, those products (none when vars.eval_dedup keeps one
-- product per group): a list item among them is a duplicate of the positive
sampled_groups as (
    select
        sampled.product_id,
        groups.duplicate_group_id
    from sampled
    inner join groups on sampled.product_id = groups.product_id
),

duplicate_sets as (
    select
        own.product_id,
        array_agg(other.product_id order by other.product_id) as duplicate_ids
    from sampled_groups as own
    inner join sampled_groups as other
        on
            own.duplicate_group_id = other.duplicate_group_id
            and own.product_id <> other.product_id
    group by own.product_id
),

{% for d in directions %}
    queries_{{ loop.index }} as (
        select
            queries.product_id,
            queries.collection_section,
            queries.embedding::vector({{ d.query.dim }}) as query_embedding,
            duplicate_sets.duplicate_ids
        from {{ ref('int_eval_vectors') }} as queries
        left join duplicate_sets on queries.product_id = duplicate_sets.product_id
        where queries.space = {{ sql_string(d.query.name) }}
    ),

    neighbours_{{ loop.index }} as (
        {{- nearest_neighbours('queries_' ~ loop.index, ref('int_eval_vectors'), d.gallery, ['duplicate_ids']) }}
    ),

{% endfor %}
listed as (
    {%- for d in directions %}
        select
            {{ sql_string(d.pair) }}::text as pair,
            {{ sql_string(d.direction) }}::text as direction,
            {{ sql_string(d.query.name) }}::text as query_space,
            {{ sql_string(d.gallery.name) }}::text as gallery_space,
            *
        from neighbours_{{ loop.index }}
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not directions %}
    {{ empty_relation({
        'pair': 'text', 'direction': 'text', 'query_space': 'text', 'gallery_space': 'text',
        'query_product_id': 'text', 'collection_section': 'text', 'duplicate_ids': 'text[]',
        'neighbour_rank': 'bigint', 'neighbour_product_id': 'text', 'neighbour_section': 'text',
        'distance': 'float8'
    }) }}
    {%- endif %}
),

final as (
    select
        pair,
        direction,
        query_space,
        gallery_space,
        query_product_id,
        collection_section,
        neighbour_rank::integer as neighbour_rank,
        neighbour_product_id,
        neighbour_section,
        distance::float8 as distance,
        neighbour_product_id = query_product_id as is_positive,
        coalesce(neighbour_product_id = any(duplicate_ids), false) as is_duplicate_of_positive
    from listed
)

select * from final
