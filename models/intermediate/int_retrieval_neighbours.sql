{{ config(pre_hook="{{ set_ef_search() }}") }}

{#- Each query's top neighbour_depth() gallery items, per pair and direction:
    ranked by cosine distance, then neighbour_product_id. Exact (every
    gallery item) or the space's HNSW index, by the rule of the ranks
    (macro exact_search). neighbour_depth() is max(K), or rerank_candidates
    when rerankers need more. Only the (pair, direction)s some reranker
    rescores are searched, so without rerankers the table is empty and costs
    nothing. -#}
{%- set depth = neighbour_depth() %}
{%- set reranked = [] %}
{%- for t in rerankers() %}{% do reranked.append(t.pair ~ ':' ~ t.direction) %}{% endfor %}
{%- set directions = [] %}
{%- for d in retrieval_directions() %}
    {%- if (d.pair ~ ':' ~ d.direction) in reranked %}{% do directions.append(d) %}{% endif %}
{%- endfor %}

with

vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

neighbours as (
    {%- for d in directions %}
        {%- set distance -%}
            gallery.embedding::vector({{ d.query.dim }}) <=> queries.embedding::vector({{ d.query.dim }})
        {%- endset %}
        select
            '{{ d.pair }}'::text as pair,
            '{{ d.direction }}'::text as direction,
            '{{ d.query.name }}'::text as query_space,
            '{{ d.gallery.name }}'::text as gallery_space,
            queries.product_id as query_product_id,
            queries.collection_section,
            nearest.neighbour_product_id,
            nearest.neighbour_section,
            nearest.distance
        from vectors as queries
        cross join
            lateral (
                select
                    gallery.product_id as neighbour_product_id,
                    gallery.collection_section as neighbour_section,
                    ({{ distance }})::float8 as distance
                from {{ ref('int_eval_vectors') }} as gallery
                where gallery.space = '{{ d.gallery.name }}'
                order by {{ distance }}{% if exact_search() %}, gallery.product_id{% endif %}
                limit {{ depth }}
            ) as nearest
        where queries.space = '{{ d.query.name }}'
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not directions %}
        select
            null::text as pair,
            null::text as direction,
            null::text as query_space,
            null::text as gallery_space,
            null::text as query_product_id,
            null::text as collection_section,
            null::text as neighbour_product_id,
            null::text as neighbour_section,
            null::float8 as distance
        from vectors
        where false
    {%- endif %}
),

final as (
    select
        neighbours.pair,
        neighbours.direction,
        neighbours.query_space,
        neighbours.gallery_space,
        neighbours.query_product_id,
        neighbours.collection_section,
        row_number() over (
            partition by neighbours.pair, neighbours.direction, neighbours.query_product_id
            order by neighbours.distance, neighbours.neighbour_product_id
        )::integer as neighbour_rank,
        neighbours.neighbour_product_id,
        neighbours.neighbour_section,
        neighbours.distance,
        neighbours.neighbour_product_id = neighbours.query_product_id as is_positive,
        coalesce(
            neighbours.neighbour_product_id <> neighbours.query_product_id
            and query_groups.duplicate_group_id = neighbour_groups.duplicate_group_id,
            false
        ) as is_duplicate_of_positive
    from neighbours
    left join groups as query_groups on neighbours.query_product_id = query_groups.product_id
    left join groups as neighbour_groups on neighbours.neighbour_product_id = neighbour_groups.product_id
)

select * from final
