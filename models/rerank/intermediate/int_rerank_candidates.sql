{{ config(enabled=family_enabled('rerank')) }}
{#- Stage 1 of two-stage retrieval: for every reranker and each (pair,
    direction) it rescores, each query's top vars.rerank_candidates gallery
    items from the pair's own space (int_retrieval_neighbours), with their
    stage-1 rank and distance, and the query's section (carried from the
    neighbour lists, so the marts need no rejoin to the sample).
    `embed-udfs rerank` scores these rows. -#}
{%- set targets = rerankers() %}
{%- set depth = rerank_candidates() %}

with

neighbours as (
    select * from {{ ref('int_retrieval_neighbours') }}
),

targets as (
    {%- for t in targets %}
    select
        {{ sql_string(t.reranker) }}::text as reranker,
        {{ sql_string(t.pair) }}::text as pair,
        {{ sql_string(t.direction) }}::text as direction
    {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not targets %}
        select
            null::text as reranker,
            null::text as pair,
            null::text as direction
        where false
    {%- endif %}
),

final as (
    select
        targets.reranker,
        neighbours.pair,
        neighbours.direction,
        neighbours.query_product_id,
        neighbours.collection_section,
        neighbours.neighbour_product_id as candidate_product_id,
        neighbours.neighbour_rank as stage1_rank,
        neighbours.distance as stage1_distance,
        neighbours.is_positive,
        neighbours.is_duplicate_of_positive
    from targets
    inner join neighbours
        on
            targets.pair = neighbours.pair
            and targets.direction = neighbours.direction
    where neighbours.neighbour_rank <= {{ depth }}
)

select * from final
