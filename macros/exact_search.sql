{#- Exact top-max(K) neighbours and the positive's rank for every query of
    one retrieval direction, with no index and no approximation.

    exact_neighbours(queries, gallery, dim, max_k, sample_size=1000)

    queries: a relation or parenthesised subquery with product_id,
        collection_section and embedding (the query space's vectors).
    gallery: the same columns for the gallery space's vectors, and only
        them. The positive of a query is the gallery row with its product_id;
        a query without one is dropped (as the inner join of today's ranks).
    dim: the spaces' dimension (both vectors are cast to vector(dim)).
    max_k: how many neighbours to list, the largest K.
    sample_size: gallery rows used to bound each query's max(K)-th distance
        before the full scan; 0 turns the bound off (every gallery row then
        goes through the top-K sort). About sqrt(N * max_k) is best.

    One row per (query, neighbour_rank), neighbour_rank 1..max(K) ordered by
    cosine distance, ties by neighbour_product_id:
        query_product_id, collection_section (the query's), neighbour_rank,
        neighbour_product_id, neighbour_section, distance (cosine distance,
        float8), is_positive, positive_distance, positive_rank
    positive_rank = 1 + gallery items strictly closer than the positive, null
    when max(K) or more are strictly closer; it is read off the list itself,
    so the two always agree.

    How it is exact and fast:
    - Order by negative inner product `<#>`, distance = 1 + (a <#> b) =
      1 - a.b. For unit vectors that is the cosine distance, and the order is
      the cosine order while skipping two norms per pair. Hard precondition:
      both spaces' vectors are L2-normalised (store.write_vectors normalises
      every vector it writes; int_vectors_validated rejects norms off 1).
    - The positive's distance and every neighbour's come from the same
      operator on the same two vectors, so an item exactly as far as the
      positive (a duplicate) is never counted as strictly closer.
    - For each query, the max(K)-th smallest distance among `sample_size`
      gallery rows is an upper bound on its max(K)-th smallest distance in
      the whole gallery (any max(K) real items bound it). The full scan then
      keeps only rows at or below that bound, a cheap filter, and only the
      survivors (about N * max_k / sample_size) are sorted. Ties at the bound
      survive, so the top max(K) with its product_id tie-break is exact.
    - The per-query scans are a LATERAL subquery over the queries, which
      PostgreSQL runs in parallel workers when the pre_hook allows them.

    Requirements for speed (not for correctness):
    - pre_hook: {{ exact_search_settings() }} (parallel workers for this
      model's transaction).
    - The gallery's rows stored inline and contiguous: a table (or a TID
      range of one, e.g. a table clustered by space) holding only that
      space's rows, embedding typed vector(dim) with STORAGE PLAIN and
      toast_tuple_target = 8160 (see index_vectors_by_space). A gallery
      that filters a table of every space reads every space's pages per query;
      a TOASTed gallery detoasts every row of every scan. -#}
{% macro exact_neighbours(queries, gallery, dim, max_k, sample_size=1000) %}
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


{#- exact_neighbours walked block by block: the gallery is read a block of
    heap pages at a time (TID range scans), and every query is compared with
    one block before the next is read, so the block stays in the CPU cache
    instead of every query streaming the whole gallery from memory (measured
    here: 0.3 us per row for a 4 MB block against 1.4 us for a 40 MB scan).
    `gallery` must be a table (not a subquery) holding only that space's rows.
    block_pages: heap pages per block (about 3 rows of 512-d each).
    sample_blocks: blocks whose rows bound each query's max(K)-th distance. -#}
{% macro exact_neighbours_blocked(queries, gallery, dim, max_k, block_pages=512, sample_blocks=1) %}
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


{#- exact_neighbours through the function exact_search_function created:
    the same rows, computed in parallel workers. -#}
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


{#- pre_hook for a model that calls exact_neighbours: let this transaction's
    per-query scans run in parallel workers. The planner's default costs
    see one cheap outer scan and would run everything in the leader. -#}
{% macro exact_search_settings(workers=2) -%}
    set local max_parallel_workers_per_gather = {{ workers }};
    set local parallel_setup_cost = 0;
    set local parallel_tuple_cost = 0;
    set local min_parallel_table_scan_size = 0;
{%- endmacro %}
