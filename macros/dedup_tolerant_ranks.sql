{#- Dedup-tolerant ranks: retrieving a duplicate of the positive (another
    member of its duplicate group, int_duplicate_groups) counts as retrieving
    the positive. For each query whose positive has duplicates in the gallery,
    duplicate_rank is the rank of the closest of them: 1 + the gallery items
    strictly closer than it, null when max(K) or more are closer (counted
    like the strict rank: among the index's top max(K) with hnsw, over the
    whole gallery with exact). fct_retrieval_ranks takes the tolerant rank as
    the better of the strict rank and duplicate_rank, so it is never worse
    than the strict rank; queries without a duplicate in the gallery keep
    their strict rank and cost no extra scan. With vars.eval_dedup the gallery
    holds one product per group and this relation is empty. -#}
{% macro dedup_tolerant_ranks() %}
{%- set max_k = max_k() %}
{%- set directions = retrieval_directions() %}

with

sample as (
    select * from {{ ref('int_eval_sample') }}
),

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

sampled_groups as (
    select
        sample.product_id,
        groups.duplicate_group_id,
        count(*) over (partition by groups.duplicate_group_id) as n_sampled_members
    from sample
    inner join groups on sample.product_id = groups.product_id
),

shared as (
    select * from sampled_groups
    where n_sampled_members > 1
),

{% for d in directions %}
{%- set dim = d.query.dim %}
best_{{ loop.index }} as (
    -- the distance from each query to the closest duplicate of its positive
    select
        queries.product_id,
        min(shared.n_sampled_members) - 1 as n_gallery_duplicates,
        min(queries.embedding::vector({{ dim }}) <=> members.embedding::vector({{ dim }})) as best_distance
    from vectors as queries
    inner join shared as own on queries.product_id = own.product_id
    inner join shared
        on
            own.duplicate_group_id = shared.duplicate_group_id
            and own.product_id <> shared.product_id
    inner join vectors as members
        on
            shared.product_id = members.product_id
            and members.space = '{{ d.gallery.name }}'
    where queries.space = '{{ d.query.name }}'
    group by queries.product_id
),

queries_{{ loop.index }} as (
    select
        best.product_id,
        best.n_gallery_duplicates,
        best.best_distance,
        queries.embedding::vector({{ dim }}) as query_embedding
    from best_{{ loop.index }} as best
    inner join vectors as queries
        on
            best.product_id = queries.product_id
            and queries.space = '{{ d.query.name }}'
),

ranked_{{ loop.index }} as (
    {{- closer_counts(
        'queries_' ~ loop.index, ['product_id', 'n_gallery_duplicates'], 'best_distance', d.gallery
    ) }}
),

{% endfor %}
final as (
    {%- for d in directions %}
    select
        '{{ d.pair }}'::text as pair,
        '{{ d.direction }}'::text as direction,
        product_id,
        n_gallery_duplicates::integer as n_gallery_duplicates,
        case when n_closer < {{ max_k }} then n_closer + 1 end::integer as duplicate_rank
    from ranked_{{ loop.index }}
    {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not directions %}
    select
        null::text as pair,
        null::text as direction,
        null::text as product_id,
        null::integer as n_gallery_duplicates,
        null::integer as duplicate_rank
    where false
    {%- endif %}
)

select * from final
{% endmacro %}
