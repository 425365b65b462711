{#- The rank of the positive for every query of one direction, over every
    pair: rank = 1 + the number of gallery items strictly closer (cosine
    distance) than the positive; null when max(K) or more items are closer.
    retrieval_search: hnsw counts among the top max(K) neighbours that the
    space's HNSW index returns (one lateral index scan per query; approximate:
    a neighbour the index misses makes the rank too good). exact counts over
    every gallery item (O(N^2) distances, run in parallel); auto picks exact
    for samples up to vars.exact_search_max_gallery (macro exact_search). -#}
{% macro retrieval_ranks(direction) %}
{%- set max_k = max_k() %}
{%- set directions = retrieval_directions() | selectattr('direction', 'equalto', direction) | list %}

with

{% for d in directions %}
{%- set dim = d.query.dim %}
queries_{{ loop.index }} as (
    select
        queries.product_id,
        queries.collection_section,
        queries.embedding::vector({{ dim }}) as query_embedding,
        queries.embedding::vector({{ dim }}) <=> positives.embedding::vector({{ dim }}) as positive_distance
    from {{ ref('int_eval_vectors') }} as queries
    inner join {{ ref('int_eval_vectors') }} as positives
        on
            queries.product_id = positives.product_id
            and positives.space = '{{ d.gallery.name }}'
    where queries.space = '{{ d.query.name }}'
),

{% if exact_search() -%}
ranked_{{ loop.index }} as (
    -- exact: every (query, gallery item) distance, in a parallel nested loop
    select
        queries.product_id,
        queries.collection_section,
        queries.positive_distance,
        count(*) as n_retrieved,
        count(*) filter (
            where gallery.embedding::vector({{ dim }}) <=> queries.query_embedding < queries.positive_distance
        ) as n_closer
    from queries_{{ loop.index }} as queries
    cross join {{ ref('int_eval_vectors') }} as gallery
    where gallery.space = '{{ d.gallery.name }}'
    group by queries.product_id, queries.collection_section, queries.positive_distance
),
{%- else -%}
ranked_{{ loop.index }} as (
    -- hnsw: the top max(K) neighbours of each query from the space's index
    select
        queries.product_id,
        queries.collection_section,
        queries.positive_distance,
        neighbours.n_retrieved,
        neighbours.n_closer
    from queries_{{ loop.index }} as queries
    cross join lateral (
        select
            count(*) as n_retrieved,
            count(*) filter (where nearest.distance < queries.positive_distance) as n_closer
        from (
            select gallery.embedding::vector({{ dim }}) <=> queries.query_embedding as distance
            from {{ ref('int_eval_vectors') }} as gallery
            where gallery.space = '{{ d.gallery.name }}'
            order by gallery.embedding::vector({{ dim }}) <=> queries.query_embedding
            limit {{ max_k }}
        ) as nearest
    ) as neighbours
),
{%- endif %}

{% endfor %}
final as (
    {%- for d in directions %}
    select
        '{{ d.pair }}'::text as pair,
        '{{ d.direction }}'::text as direction,
        '{{ d.query.name }}'::text as query_space,
        '{{ d.gallery.name }}'::text as gallery_space,
        product_id,
        collection_section,
        positive_distance,
        case when n_closer < {{ max_k }} then n_closer + 1 end::integer as positive_rank,
        n_retrieved::integer as n_retrieved
    from ranked_{{ loop.index }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not directions %}
    select
        null::text as pair,
        null::text as direction,
        null::text as query_space,
        null::text as gallery_space,
        null::text as product_id,
        null::text as collection_section,
        null::float8 as positive_distance,
        null::integer as positive_rank,
        null::integer as n_retrieved
    where false
    {%- endif %}
)

select * from final
{% endmacro %}
