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

ranked_{{ loop.index }} as (
    {{- closer_counts(
        'queries_' ~ loop.index, ['product_id', 'collection_section', 'positive_distance'],
        'positive_distance', d.gallery
    ) }}
),

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


{#- For each row of `queries` (columns query_embedding and `threshold`, a
    cosine distance), how many items of the gallery space lie strictly
    closer than the threshold: n_closer, and n_retrieved, the items looked
    at. Exact: every item, in a parallel nested loop. HNSW: among the top
    max(K) that the space's index returns, one lateral index scan per query
    (the gallery must be the indexed relation itself, not a CTE, for the
    planner to use the index). The `keys` columns are carried through. -#}
{% macro closer_counts(queries, keys, threshold, gallery_space) %}
{%- set dim = gallery_space.dim %}
{%- set gallery_distance -%}
    gallery.embedding::vector({{ dim }}) <=> queries.query_embedding
{%- endset %}
{%- if exact_search() %}
    select
        {%- for key in keys %}
        queries.{{ key }},
        {%- endfor %}
        count(*) as n_retrieved,
        count(*) filter (where {{ gallery_distance }} < queries.{{ threshold }}) as n_closer
    from {{ queries }} as queries
    cross join {{ ref('int_eval_vectors') }} as gallery
    where gallery.space = '{{ gallery_space.name }}'
    group by {% for key in keys %}queries.{{ key }}{{ ", " if not loop.last }}{% endfor %}
{%- else %}
    select
        {%- for key in keys %}
        queries.{{ key }},
        {%- endfor %}
        neighbours.n_retrieved,
        neighbours.n_closer
    from {{ queries }} as queries
    cross join lateral (
        select
            count(*) as n_retrieved,
            count(*) filter (where nearest.distance < queries.{{ threshold }}) as n_closer
        from (
            select {{ gallery_distance }} as distance
            from {{ ref('int_eval_vectors') }} as gallery
            where gallery.space = '{{ gallery_space.name }}'
            order by {{ gallery_distance }}
            limit {{ max_k() }}
        ) as nearest
    ) as neighbours
{%- endif %}
{% endmacro %}
