{{ config(enabled=family_enabled('labels'), pre_hook="{{ set_ef_search() }}") }}

{#- Each labelled product's nearest neighbour (cosine) among the other
    products of the label sample, in every text space, and whether the two
    share a section. The product's own duplicate group (itself, and its exact
    or near duplicates when vars.eval_dedup lets them into the sample) is
    excluded: a copy of the product would be a free hit. retrieval_search:
    hnsw asks the space's HNSW index (approximate: a missed neighbour can
    change the answer; the group filter applies to its ef_search
    candidates); exact compares every product of the space, from a copy of
    that space's rows that has no index (an index scan under an incremental
    sort on (distance, product_id) would be approximate), ties broken by
    product_id; auto is exact up to vars.exact_search_max_gallery products,
    and at most 10,000: this exact path compares every pair. -#}
{%- set exact = exact_search(cap=10000) %}

with

vectors as (
    select * from {{ ref('int_label_vectors') }}
),

{%- if exact %}
    {%- for name in label_space_names() %}

        space_{{ loop.index }} as materialized (
            select
                space,
                product_id,
                collection_section,
                duplicate_group_id,
                embedding
            from vectors
            where space = {{ sql_string(name) }}
        ),
    {%- endfor %}
{%- endif %}

neighbours as (
    {%- for name in label_space_names() %}
        {%- set dim = embedding_space(name).dim %}
        {%- if exact %}
            {%- set candidates = 'space_' ~ loop.index %}
            {%- set distance = 'candidates.embedding <=> queries.embedding' %}
            {%- set nearest_first = 'distance asc, candidates.product_id asc' %}
        {%- else %}
            {%- set candidates = ref('int_label_vectors') %}
            {#- the bare distance expression, so that the HNSW index serves it #}
            {%- set distance = 'candidates.embedding::vector(' ~ dim ~ ') <=> queries.embedding::vector(' ~ dim ~ ')' %}
            {%- set nearest_first = distance %}
        {%- endif %}
        select
            queries.space,
            queries.product_id,
            queries.collection_section,
            nearest.product_id as neighbour_product_id,
            nearest.collection_section as neighbour_section,
            nearest.distance as neighbour_distance
        from vectors as queries
        cross join
            lateral (
                select
                    candidates.product_id,
                    candidates.collection_section,
                    {{ distance }} as distance
                from {{ candidates }} as candidates
                where
                    candidates.space = {{ sql_string(name) }}
                    and candidates.duplicate_group_id <> queries.duplicate_group_id
                order by {{ nearest_first }}
                limit 1
            ) as nearest
        where queries.space = {{ sql_string(name) }}
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not label_space_names() %}
        select
            null::text as space,
            null::text as product_id,
            null::text as collection_section,
            null::text as neighbour_product_id,
            null::text as neighbour_section,
            null::float8 as neighbour_distance
        where false
    {%- endif %}
),

final as (
    select
        *,
        collection_section = neighbour_section as is_same_section
    from neighbours
)

select * from final
