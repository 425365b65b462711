{#- The exact top-max(K) formulations measured against exact_neighbours
    (macros/exact_search.sql) and superseded by it: same arguments, same
    rows. Plain Jinja, no dbt context: bench/exact_ranks.py times them and
    tests/python/test_exact_search.py checks their rows, each rendering this
    file after macros/exact_search.sql (exact_search_settings is there). -#}


{#- The previous exact formulation: a recursive walk over the gallery's heap,
    one block of pages (a TID range scan) per step, carrying each query's best
    max(K) as sorted arrays and merging every block into them per query. Same
    rows as exact_neighbours; about 2x its CPU time (each step's per-query
    merge and heap reads cost more than the distances). `gallery` must be a
    TABLE holding one space, stored inline. Kept for bench/exact_ranks.py. -#}
{% macro exact_neighbours_walk(queries, gallery, dim, max_k, block_pages=128) %}
{%- set vec = 'vector(' ~ dim ~ ')' %}
with recursive

exact_queries as materialized (
    select
        queries.product_id,
        queries.collection_section,
        queries.embedding::{{ vec }} as embedding,
        queries.embedding::{{ vec }} <#> positives.embedding::{{ vec }} as positive_nip
    from {{ queries }} as queries
    inner join {{ gallery }} as positives on queries.product_id = positives.product_id
),

exact_blocks as (
    select
        (first_page / {{ block_pages }})::int + 1 as block_no,
        format('(%s,0)', first_page)::tid as first_tid,
        format('(%s,0)', first_page + {{ block_pages }})::tid as end_tid
    from generate_series(
        0,
        (pg_relation_size('{{ gallery }}') / current_setting('block_size')::int)::int,
        {{ block_pages }}
    ) as first_page
),

exact_walk as (
    select
        product_id,
        0 as block_no,
        array[]::float8[] as nips,
        array[]::text[] as ids
    from exact_queries
    union all
    select
        exact_walk.product_id,
        exact_blocks.block_no,
        merged.nips,
        merged.ids
    from exact_walk
    inner join exact_blocks on exact_walk.block_no + 1 = exact_blocks.block_no
    inner join exact_queries on exact_walk.product_id = exact_queries.product_id
    cross join lateral (
        select
            array_agg(best.nip order by best.nip, best.id) as nips,
            array_agg(best.id order by best.nip, best.id) as ids
        from (
            select kept.nip, kept.id
            from (
                select so_far.nip, so_far.id
                from unnest(exact_walk.nips, exact_walk.ids) as so_far (nip, id)
                union all
                select
                    gallery.embedding::{{ vec }} <#> exact_queries.embedding,
                    gallery.product_id
                from {{ gallery }} as gallery
                where
                    gallery.ctid >= exact_blocks.first_tid
                    and gallery.ctid < exact_blocks.end_tid
                    and (
                        cardinality(exact_walk.nips) < {{ max_k }}
                        or gallery.embedding::{{ vec }} <#> exact_queries.embedding
                        <= exact_walk.nips[{{ max_k }}]
                    )
            ) as kept
            order by kept.nip, kept.id
            limit {{ max_k }}
        ) as best
    ) as merged
),

exact_lists as (
    select
        exact_walk.product_id as query_product_id,
        exact_queries.collection_section,
        exact_queries.positive_nip,
        nearest.neighbour_rank,
        nearest.neighbour_product_id,
        nearest.nip,
        (
            select count(*) from unnest(exact_walk.nips) as closer (nip)
            where closer.nip < exact_queries.positive_nip
        ) as n_closer
    from exact_walk
    inner join exact_queries on exact_walk.product_id = exact_queries.product_id
    cross join lateral unnest(exact_walk.nips, exact_walk.ids)
        with ordinality as nearest (nip, neighbour_product_id, neighbour_rank)
    where exact_walk.block_no = (select max(block_no) from exact_blocks)
)

select
    exact_lists.query_product_id,
    exact_lists.collection_section,
    exact_lists.neighbour_rank::integer as neighbour_rank,
    exact_lists.neighbour_product_id,
    neighbours.collection_section as neighbour_section,
    1 + exact_lists.nip as distance,
    exact_lists.neighbour_product_id = exact_lists.query_product_id as is_positive,
    1 + exact_lists.positive_nip as positive_distance,
    case when exact_lists.n_closer < {{ max_k }} then exact_lists.n_closer + 1 end::integer as positive_rank
from exact_lists
inner join {{ gallery }} as neighbours on exact_lists.neighbour_product_id = neighbours.product_id
{% endmacro %}




{#- The walk's blocks without recursion: each query's max(K)-th distance is
    bounded by its max(K)-th among the first sample_blocks blocks' rows (any
    max(K) real items bound it from above; rows at the bound are kept, so
    ties are never cut); then every (block, query) keeps at most max(K) rows
    at or below that bound, and one sort merges them. Fastest at 5,000, but
    the merge grows as queries x blocks x max(K) (13 million rows per
    direction at 20,000, spilling to disk), so slower from 20,000 on. Kept
    for bench/exact_ranks.py; `gallery` must be a table as above. -#}
{% macro exact_neighbours_merge(queries, gallery, dim, max_k, block_pages=512, sample_blocks=1) %}
{%- set vec = 'vector(' ~ dim ~ ')' %}
with

exact_queries as materialized (
    select
        queries.product_id,
        queries.collection_section,
        queries.embedding::{{ vec }} as embedding,
        queries.embedding::{{ vec }} <#> positives.embedding::{{ vec }} as positive_nip,
        bound.nip_bound
    from {{ queries }} as queries
    inner join {{ gallery }} as positives on queries.product_id = positives.product_id
    cross join lateral (
        -- any max(K) rows bound it; fewer than max(K) bound nothing
        select case when count(*) < {{ max_k }} then 'Infinity'::float8 else max(nearest.nip) end as nip_bound
        from (
            select sample.embedding::{{ vec }} <#> queries.embedding::{{ vec }} as nip
            from {{ gallery }} as sample
            where sample.ctid < '({{ block_pages * sample_blocks }},0)'::tid
            order by nip
            limit {{ max_k }}
        ) as nearest
    ) as bound
),

exact_blocks as (
    select
        format('(%s,0)', first_page)::tid as first_tid,
        format('(%s,0)', first_page + {{ block_pages }})::tid as end_tid
    from generate_series(
        0,
        (pg_relation_size('{{ gallery }}') / current_setting('block_size')::int)::int,
        {{ block_pages }}
    ) as first_page
),

exact_candidates as (
    select
        nearest.*
    from exact_blocks
    cross join lateral (
        -- every query against this block before the next block is read
        select
            exact_queries.product_id as query_product_id,
            exact_queries.collection_section,
            exact_queries.positive_nip,
            kept.*
        from exact_queries
        cross join lateral (
            select
                gallery.product_id as neighbour_product_id,
                gallery.collection_section as neighbour_section,
                gallery.embedding::{{ vec }} <#> exact_queries.embedding as nip
            from {{ gallery }} as gallery
            where
                gallery.ctid >= exact_blocks.first_tid
                and gallery.ctid < exact_blocks.end_tid
                and gallery.embedding::{{ vec }} <#> exact_queries.embedding <= exact_queries.nip_bound
            order by nip, gallery.product_id
            limit {{ max_k }}
        ) as kept
    ) as nearest
),

exact_ranked as (
    select
        *,
        row_number() over (partition by query_product_id order by nip, neighbour_product_id) as neighbour_rank
    from exact_candidates
),

exact_lists as (
    select
        *,
        count(*) filter (where nip < positive_nip) over (partition by query_product_id) as n_closer
    from exact_ranked
    where neighbour_rank <= {{ max_k }}
)

select
    query_product_id,
    collection_section,
    neighbour_rank::integer as neighbour_rank,
    neighbour_product_id,
    neighbour_section,
    1 + nip as distance,
    neighbour_product_id = query_product_id as is_positive,
    1 + positive_nip as positive_distance,
    case when n_closer < {{ max_k }} then n_closer + 1 end::integer as positive_rank
from exact_lists
{% endmacro %}


{#- The first formulation tried: one LATERAL top-max(K) scan of the whole
    gallery per query (a bounded heap sort), with the same sample bound
    (sample_size rows; 0: none). Same rows as exact_neighbours; every query
    streams the whole gallery from memory, and the lateral reference keeps
    it out of parallel workers. Kept for bench/exact_ranks.py. -#}
{% macro exact_neighbours_per_query(queries, gallery, dim, max_k, sample_size=1000) %}
{%- set vec = 'vector(' ~ dim ~ ')' %}
with

exact_queries as (
    select
        queries.product_id,
        queries.collection_section,
        queries.embedding::{{ vec }} as embedding,
        queries.embedding::{{ vec }} <#> positives.embedding::{{ vec }} as positive_nip
    from {{ queries }} as queries
    inner join {{ gallery }} as positives on queries.product_id = positives.product_id
),

exact_bounds as (
    select
        exact_queries.*,
        {%- if sample_size > 0 %}
        bound.nip_bound
        {%- else %}
        'Infinity'::float8 as nip_bound
        {%- endif %}
    from exact_queries
    {%- if sample_size > 0 %}
    cross join lateral (
        -- fewer than max(K) rows bound nothing: keep every row then
        select case when count(*) < {{ max_k }} then 'Infinity'::float8 else max(nearest.nip) end as nip_bound
        from (
            select sample.embedding::{{ vec }} <#> exact_queries.embedding as nip
            from (select embedding from {{ gallery }} limit {{ sample_size }}) as sample
            order by nip
            limit {{ max_k }}
        ) as nearest
    ) as bound
    {%- endif %}
),

exact_lists as (
    select
        exact_bounds.product_id as query_product_id,
        exact_bounds.collection_section,
        exact_bounds.positive_nip,
        nearest.*
    from exact_bounds
    cross join lateral (
        -- numbering and counting the max(K) kept rows, not every query's at once
        select
            kept.*,
            row_number() over (order by kept.nip, kept.neighbour_product_id) as neighbour_rank,
            count(*) filter (where kept.nip < exact_bounds.positive_nip) over () as n_closer
        from (
            select
                gallery.product_id as neighbour_product_id,
                gallery.collection_section as neighbour_section,
                gallery.embedding::{{ vec }} <#> exact_bounds.embedding as nip
            from {{ gallery }} as gallery
            where gallery.embedding::{{ vec }} <#> exact_bounds.embedding <= exact_bounds.nip_bound
            order by nip, gallery.product_id
            limit {{ max_k }}
        ) as kept
    ) as nearest
)

select
    query_product_id,
    collection_section,
    neighbour_rank::integer as neighbour_rank,
    neighbour_product_id,
    neighbour_section,
    1 + nip as distance,
    neighbour_product_id = query_product_id as is_positive,
    1 + positive_nip as positive_distance,
    case when n_closer < {{ max_k }} then n_closer + 1 end::integer as positive_rank
from exact_lists
{% endmacro %}


{#- The same search as a PARALLEL SAFE function of one query, created by a
    pre_hook (DDL: `name` is a schema-qualified function name, one per
    gallery). Why: a LATERAL subquery's reference to the outer query row is a
    parameter that PostgreSQL does not pass to parallel workers, so the
    per-query scans of exact_neighbours run in the leader only; a function
    call in the select list takes the query vector as a plain argument and
    runs in every worker. COST tells the planner each call is a full gallery
    scan, so that it parallelises the calls. -#}
{% macro exact_search_function(name, gallery, dim, max_k, sample_size=1000) %}
{%- set vec = 'vector(' ~ dim ~ ')' %}
create or replace function {{ name }}(query {{ vec }}, positive_nip float8)
returns table (
    neighbour_rank bigint,
    neighbour_product_id text,
    neighbour_section text,
    nip float8,
    n_closer bigint
)
language plpgsql stable parallel safe cost 1000000 rows {{ max_k }}
as $exact$
#variable_conflict use_column
declare
    nip_bound float8 := 'Infinity';
begin
    {%- if sample_size > 0 %}
    -- fewer than max(K) rows bound nothing: keep every row then
    select case when count(*) < {{ max_k }} then 'Infinity'::float8 else max(nearest.d) end
    into nip_bound
    from (
        select sample.embedding::{{ vec }} <#> query as d
        from (select embedding from {{ gallery }} limit {{ sample_size }}) as sample
        order by d
        limit {{ max_k }}
    ) as nearest;
    {%- endif %}
    return query
    select
        row_number() over (order by kept.d, kept.id),
        kept.id,
        kept.section,
        kept.d,
        count(*) filter (where kept.d < positive_nip) over ()
    from (
        select
            gallery.product_id as id,
            gallery.collection_section as section,
            gallery.embedding::{{ vec }} <#> query as d
        from {{ gallery }} as gallery
        where gallery.embedding::{{ vec }} <#> query <= nip_bound
        order by d, gallery.product_id
        limit {{ max_k }}
    ) as kept;
end
$exact$;
{% endmacro %}


{#- exact_neighbours_per_query through the function exact_search_function
    created: the same rows, computed in parallel workers. Measured slower than
    exact_neighbours: every query still streams the whole gallery. -#}
{% macro exact_neighbours_parallel(queries, gallery, function_name, dim, max_k) %}
{%- set vec = 'vector(' ~ dim ~ ')' %}
with

exact_queries as (
    select
        queries.product_id,
        queries.collection_section,
        queries.embedding::{{ vec }} <#> positives.embedding::{{ vec }} as positive_nip,
        queries.embedding::{{ vec }} as embedding
    from {{ queries }} as queries
    inner join {{ gallery }} as positives on queries.product_id = positives.product_id
),

exact_calls as (
    -- a set-returning call in the select list keeps this subquery whole: one call per query
    select
        product_id,
        collection_section,
        positive_nip,
        {{ function_name }}(embedding, positive_nip) as nearest
    from exact_queries
)

select
    product_id as query_product_id,
    collection_section,
    (nearest).neighbour_rank::integer as neighbour_rank,
    (nearest).neighbour_product_id,
    (nearest).neighbour_section,
    1 + (nearest).nip as distance,
    (nearest).neighbour_product_id = product_id as is_positive,
    1 + positive_nip as positive_distance,
    case when (nearest).n_closer < {{ max_k }} then (nearest).n_closer + 1 end::integer as positive_rank
from exact_calls
{% endmacro %}
