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
    never worse than the strict rank.

    The galleries (gallery_scope): `sample`, the eval sample itself;
    `catalog`, every product with a valid vector in the gallery space after
    dedup (int_catalog_gallery_vectors, lists in
    int_catalog_retrieval_neighbours); and between them, where the catalog
    allows, `sample_x<m>`, the sample's gallery and a fixed draw of the
    catalog about m times its size (macro gallery_tiers, lists in
    int_tier_retrieval_neighbours, searched exactly). The queries are the
    eval sample in each. gallery_size is the gallery's product count. -#}
{%- set max_k = max_k() %}
{%- set directions = retrieval_directions() %}
{#- one entry per (gallery scope, direction of a pair): its CTEs' suffix, and
    for a tier, the tier (macro gallery_tiers) -#}
{%- set searches = [] %}
{%- for d in directions %}
    {%- do searches.append({'scope': 'sample', 'd': d, 'tier': none, 'cte': 'sample_' ~ loop.index}) %}
    {%- do searches.append({'scope': 'catalog', 'd': d, 'tier': none, 'cte': 'catalog_' ~ loop.index}) %}
    {%- set outer = loop %}
    {%- for tier in gallery_tiers(d.query.name, d.gallery.name) %}
        {%- do searches.append({
            'scope': tier.scope, 'd': d, 'tier': tier, 'cte': 'tier_' ~ outer.index ~ '_' ~ loop.index}) %}
    {%- endfor %}
{%- endfor %}
{#- each tier's size per gallery space, counted below: {(scope, space): tier} -#}
{%- set tier_galleries = {} %}
{%- for search in searches if search.tier is not none %}
    {%- do tier_galleries.update({(search.scope, search.d.gallery.name): search.tier}) %}
{%- endfor %}

with

vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

catalog_vectors as (
    select * from {{ ref('int_catalog_gallery_vectors') }}
),

neighbours as (
    select * from {{ ref('int_retrieval_neighbours') }}
),

catalog_neighbours as (
    select * from {{ ref('int_catalog_retrieval_neighbours') }}
),

tier_neighbours as (
    select * from {{ ref('int_tier_retrieval_neighbours') }}
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
        'sample'::text as gallery_scope,
        space,
        count(*) as n_gallery
    from vectors
    group by space
    union all
    select
        'catalog'::text as gallery_scope,
        space,
        count(*) as n_gallery
    from catalog_vectors
    group by space
    {%- for (scope, space), tier in tier_galleries | dictsort %}
    union all
    select
        {{ sql_string(scope) }}::text as gallery_scope,
        space,
        count(*) as n_gallery
    from catalog_vectors
    where space = {{ sql_string(space) }} and {{ in_gallery_tier('catalog_vectors', tier, space, 'vectors') }}
    group by space
    {%- endfor %}
),

{% for search in searches %}
    {%- set scope, d, cte = search.scope, search.d, search.cte %}
    {%- set scope_vectors = 'vectors' if scope == 'sample' else 'catalog_vectors' %}
    {%- set dim = d.query.dim %}
    positives_{{ cte }} as (
        select
            queries.product_id,
            queries.collection_section,
            queries.embedding::vector({{ dim }}) <=> positives.embedding::vector({{ dim }}) as positive_distance
        from vectors as queries
        inner join {{ scope_vectors }} as positives
            on
                queries.product_id = positives.product_id
                and positives.space = {{ sql_string(d.gallery.name) }}
        where queries.space = {{ sql_string(d.query.name) }}
    ),

    -- the distance from each query to the closest duplicate of its positive in this gallery
    duplicates_{{ cte }} as (
        {%- if scope == 'sample' %}
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
        {%- else %}
            select
                queries.product_id,
                count(*) as n_gallery_duplicates,
                min(queries.embedding::vector({{ dim }}) <=> members.embedding::vector({{ dim }})) as duplicate_distance
            from vectors as queries
            inner join groups as own on queries.product_id = own.product_id
            inner join {{ scope_vectors }} as members
                on
                    own.duplicate_group_id = members.duplicate_group_id
                    and own.product_id <> members.product_id
                    and members.space = {{ sql_string(d.gallery.name) }}
                    -- a tier: the members the tier holds
                    and {{ in_gallery_tier('members', search.tier, d.gallery.name, 'vectors')
                        if search.tier is not none else 'true' }}
            where queries.space = {{ sql_string(d.query.name) }}
            group by queries.product_id
        {%- endif %}
    ),

{% endfor %}
queries as (
    {%- for search in searches %}
        {%- set scope, d = search.scope, search.d %}
        select
            {{ sql_string(scope) }}::text as gallery_scope,
            {{ sql_string(d.pair) }}::text as pair,
            {{ sql_string(d.direction) }}::text as direction,
            {{ sql_string(d.query.name) }}::text as query_space,
            {{ sql_string(d.gallery.name) }}::text as gallery_space,
            {#- a catalog that is the sample's own gallery copies the sample's lists and search #}
            {{ 'true' if scope != 'catalog'
                or (exact_search() if catalog_gallery_is_sample(d.gallery.name)
                    else catalog_search_method(d.query.name, d.gallery.name) == 'exact')
                else 'false' }} as is_exact,
            positives.product_id,
            positives.collection_section,
            positives.positive_distance,
            duplicates.duplicate_distance,
            coalesce(duplicates.n_gallery_duplicates, 0)::integer as n_gallery_duplicates
        from positives_{{ search.cte }} as positives
        left join duplicates_{{ search.cte }} as duplicates
            on positives.product_id = duplicates.product_id
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not directions %}
    {{ empty_relation({
        'gallery_scope': 'text', 'pair': 'text', 'direction': 'text', 'query_space': 'text',
        'gallery_space': 'text', 'is_exact': 'boolean', 'product_id': 'text', 'collection_section': 'text',
        'positive_distance': 'float8', 'duplicate_distance': 'float8', 'n_gallery_duplicates': 'integer'
    }) }}
    {%- endif %}
),

lists as (
    select
        'sample'::text as gallery_scope,
        pair,
        direction,
        query_product_id,
        distance
    from neighbours
    union all
    select
        'catalog'::text as gallery_scope,
        pair,
        direction,
        query_product_id,
        distance
    from catalog_neighbours
    union all
    select
        gallery_scope,
        pair,
        direction,
        query_product_id,
        distance
    from tier_neighbours
),

closer as (
    select
        queries.gallery_scope,
        queries.pair,
        queries.direction,
        queries.product_id,
        count(lists.distance) as n_listed,
        count(*) filter (where lists.distance < queries.positive_distance) as n_closer,
        count(*) filter (
            where lists.distance < least(queries.positive_distance, queries.duplicate_distance)
        ) as n_closer_tolerant
    from queries
    left join lists
        on
            queries.gallery_scope = lists.gallery_scope
            and queries.pair = lists.pair
            and queries.direction = lists.direction
            and queries.product_id = lists.query_product_id
    group by queries.gallery_scope, queries.pair, queries.direction, queries.product_id
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
        case
            when queries.gallery_scope = 'sample' then {{ 'gallery_sizes.n_gallery' if exact_search() else 'closer.n_listed' }}
            when queries.is_exact then gallery_sizes.n_gallery
            else closer.n_listed
        end::integer as n_retrieved,
        case
            when closer.n_closer_tolerant < {{ max_k }} then closer.n_closer_tolerant + 1
        end::integer as dedup_tolerant_rank,
        queries.n_gallery_duplicates,
        queries.gallery_scope,
        gallery_sizes.n_gallery::integer as gallery_size,
        coalesce(queries.gallery_scope = 'catalog' and gallery_sizes.n_gallery = sample_sizes.n_gallery, false)
            as gallery_is_sample
    from queries
    inner join closer
        on
            queries.gallery_scope = closer.gallery_scope
            and queries.pair = closer.pair
            and queries.direction = closer.direction
            and queries.product_id = closer.product_id
    inner join gallery_sizes
        on
            queries.gallery_scope = gallery_sizes.gallery_scope
            and queries.gallery_space = gallery_sizes.space
    left join gallery_sizes as sample_sizes
        on
            sample_sizes.gallery_scope = 'sample'
            and queries.gallery_space = sample_sizes.space
)

select * from final
