{#- Exact top-max(K) neighbours and the positive's rank for every query of
    one retrieval direction, with no index and no approximation.

    exact_neighbours(queries, gallery, dim, max_k, block_rows=256, sample_rows=none)

    The exact path of nearest_neighbours (the retrieval neighbour lists)
    calls this; bench/sql/exact_search_alternatives.sql holds the
    alternatives measured against it.

    queries: a relation or parenthesised subquery with product_id,
        collection_section and embedding (the query space's vectors).
    gallery: a relation or parenthesised subquery with the same columns
        holding the gallery space's vectors and nothing else. The positive of
        a query is the gallery row with its product_id; a query without one
        is dropped (it has no positive to rank).
    dim: the spaces' dimension (vectors are cast to vector(dim)).
    max_k: how many neighbours to list.
    block_rows: gallery vectors per block (256 x 512-d is 0.5 MB, which stays
        in a core's 2 MB L2 cache while every query meets it).
    sample_rows: gallery rows that bound each query's max(K)-th distance
        (none: the rule below).

    One row per (query, neighbour_rank), neighbour_rank 1..min(max_k, N)
    ordered by distance, ties by neighbour_product_id:
        query_product_id, collection_section (the query's), neighbour_rank,
        neighbour_product_id, neighbour_section, distance (cosine distance,
        float8), is_positive, positive_distance, positive_rank
    positive_rank = 1 + gallery items strictly closer than the positive, null
    when max_k or more are strictly closer. It is read off the list itself
    (fewer than max_k strictly closer items are all in it), so the two always
    agree; no query needs a count of its own.

    How, in three set-based steps and no per-query sort of the gallery:
    1. Bound. Any max_k real gallery items bound a query's max_k-th distance
       from above. Each query takes its max_k-th distance among an evenly
       spread sample of the gallery (every stride-th product id), a top-N
       sort over sample_rows rows: greatest(2 sqrt(max_k N), max_k N / 400)
       rows, which balances the sample's cost against the rows the bound lets
       through (about max_k N / sample_rows per query, at most 400).
    2. Scan. The gallery, as arrays of block_rows vectors, is walked one
       block at a time; each block meets every query before the next block
       is read, so it is read from cache (a nested loop whose inner side is
       the whole gallery streams it from memory for every query: 1.6x the
       time per pair at N = 20,000). A pair is kept when its distance is at
       or below the query's bound; the rest are dropped where computed.
    3. List. One sort of the kept pairs by (query, distance, gallery
       position) keeps each query's first max_k. Queries and gallery items
       are numbered (gallery items in product_id order) so that the sort
       compares integers and ties still fall to the product id.

    Why it is exact:
    - Order by negative inner product `<#>`: distance = 1 + (a <#> b) =
      1 - a.b. For unit vectors that is the cosine distance and the cosine
      order, without two norms per pair. HARD PRECONDITION: both spaces'
      vectors are L2-normalised (store.write_vectors normalises every vector
      it writes; int_vectors_validated rejects norms off 1). On vectors of
      other lengths this order is not the cosine order.
    - The bound is the distance of real items, and rows AT the bound are
      kept, so no item of a query's top max_k (ties included) is dropped.
    - The positive's distance and every neighbour's come from the same
      operator on the same two vectors (the query's vector on the right), so
      an item exactly as far as the positive is never strictly closer.
    - pgvector sums in float32: two items whose true distances differ by
      less than about 1e-7 can come out tied (then ordered by product_id) or
      swapped, against a float64 computation (bench/RESULTS.md).

    Requirements (speed, not correctness): pre_hook {{ exact_search_settings() }}
    (work_mem for the sort of kept pairs: about 50 bytes a pair, about 400
    pairs a query at most). Run the two directions as separate models, so
    that dbt's two threads use both cores. bench/exact_ranks.py measures this
    against those alternatives. -#}
{% macro exact_neighbours(queries, gallery, dim, max_k, block_rows=256, sample_rows=none) %}
{%- set vec = 'vector(' ~ dim ~ ')' %}
with

exact_gallery as materialized (
    select
        (row_number() over (order by gallery.product_id))::integer as gid,
        gallery.product_id,
        gallery.collection_section,
        gallery.embedding::{{ vec }} as embedding
    from {{ gallery }} as gallery
),

exact_sample_stride as (
    select
        {%- if sample_rows is none %}
        greatest(1, floor(count(*) / greatest(1, 2 * sqrt({{ max_k }} * count(*)), {{ max_k }} * count(*) / 400.0)))::integer
        {%- else %}
        greatest(1, count(*) / {{ sample_rows }})::integer
        {%- endif %} as stride
    from exact_gallery
),

exact_sample as materialized (
    select exact_gallery.embedding
    from exact_gallery
    cross join exact_sample_stride
    where exact_gallery.gid % exact_sample_stride.stride = 0
),

exact_blocks as materialized (
    select
        array_agg(gid order by gid) as gids,
        array_agg(embedding order by gid) as embeddings
    from exact_gallery
    group by (gid - 1) / {{ block_rows }}
),

exact_queries as materialized (
    select
        (row_number() over ())::integer as qid,
        queries.product_id,
        queries.collection_section,
        queries.embedding::{{ vec }} as embedding,
        positives.embedding <#> queries.embedding::{{ vec }} as positive_nip
    from {{ queries }} as queries
    inner join exact_gallery as positives on queries.product_id = positives.product_id
),

exact_bounds as materialized (
    select
        exact_queries.qid,
        exact_queries.embedding,
        (
            -- fewer than max_k rows bound nothing: keep every row then
            select case when count(*) < {{ max_k }} then 'Infinity'::float8 else max(nearest.nip) end
            from (
                select exact_sample.embedding <#> exact_queries.embedding as nip
                from exact_sample
                order by nip
                limit {{ max_k }}
            ) as nearest
        ) as nip_bound
    from exact_queries
),

exact_kept as (
    select kept.*
    from exact_blocks
    cross join lateral (
        -- offset 0 keeps the block's unnest inside: every query meets this block before the next
        select
            exact_bounds.qid,
            block.gid,
            block.embedding <#> exact_bounds.embedding as nip
        from exact_bounds
        cross join (
            -- set-returning functions keep this subquery whole: one unnest of the block
            select
                unnest(exact_blocks.gids) as gid,
                unnest(exact_blocks.embeddings) as embedding
        ) as block
        where block.embedding <#> exact_bounds.embedding <= exact_bounds.nip_bound
        offset 0
    ) as kept
),

exact_ranked as (
    select
        exact_kept.*,
        row_number() over (partition by exact_kept.qid order by exact_kept.nip, exact_kept.gid) as neighbour_rank
    from exact_kept
),

exact_lists as (
    select
        exact_ranked.*,
        count(*) filter (where exact_ranked.nip < exact_queries.positive_nip)
            over (partition by exact_ranked.qid) as n_closer
    from exact_ranked
    inner join exact_queries on exact_ranked.qid = exact_queries.qid
    where exact_ranked.neighbour_rank <= {{ max_k }}
)

select
    exact_queries.product_id as query_product_id,
    exact_queries.collection_section,
    exact_lists.neighbour_rank::integer as neighbour_rank,
    neighbours.product_id as neighbour_product_id,
    neighbours.collection_section as neighbour_section,
    1 + exact_lists.nip as distance,
    neighbours.product_id = exact_queries.product_id as is_positive,
    1 + exact_queries.positive_nip as positive_distance,
    case when exact_lists.n_closer < {{ max_k }} then exact_lists.n_closer + 1 end::integer as positive_rank
from exact_lists
inner join exact_queries on exact_lists.qid = exact_queries.qid
inner join exact_gallery as neighbours on exact_lists.gid = neighbours.gid
{% endmacro %}


{#- pre_hook for a model that calls these macros: memory for the merge sort
    and the materialised queries, and parallel workers (the planner's default
    costs see one cheap outer scan and would run everything in the leader). -#}
{% macro exact_search_settings(workers=2, work_mem='256MB') -%}
    set local work_mem = '{{ work_mem }}';
    set local max_parallel_workers_per_gather = {{ workers }};
    set local parallel_setup_cost = 0;
    set local parallel_tuple_cost = 0;
    set local min_parallel_table_scan_size = 0;
{%- endmacro %}


{#- Both directions of one pair from one pass over the (text, image) pairs:
    the inner product of a text and an image is the same number for
    text -> image and image -> text, so it is computed once and kept for
    each direction whose bound it meets. `part` of `parts` takes the texts
    numbered part, part + parts, ... against every image, so that `parts`
    connections (dbt threads) share the pairs; exact_lists_from_pairs then
    sorts each direction's kept pairs.

    exact_pairs(texts, images, dim, max_k, part=0, parts=1, block_rows=256)

    texts, images: relations or parenthesised subqueries with product_id and
        embedding, the two spaces of one pair over the same products (the
        eval sample: every product has both).
    One row per kept (text, image) pair: text_product_id, image_product_id,
    tid, iid (1-based positions in product_id order), nip (a <#> b),
    for_text_to_image, for_image_to_text (the pair is within the text's, or
    the image's, max_k-th distance bound). Exact for the same reasons as
    exact_neighbours (real items bound, rows at the bound kept, vectors unit
    length); the bounds come from the same spread samples. -#}
{% macro exact_pairs(texts, images, dim, max_k, part=0, parts=1, block_rows=256) %}
{%- set vec = 'vector(' ~ dim ~ ')' %}
with

pair_texts as materialized (
    select
        (row_number() over (order by texts.product_id))::integer as tid,
        texts.product_id,
        texts.embedding::{{ vec }} as embedding
    from {{ texts }} as texts
),

pair_images as materialized (
    select
        (row_number() over (order by images.product_id))::integer as iid,
        images.product_id,
        images.embedding::{{ vec }} as embedding
    from {{ images }} as images
),

pair_stride as (
    select
        greatest(1, floor(count(*) / greatest(1, 2 * sqrt({{ max_k }} * count(*)), {{ max_k }} * count(*) / 400.0)))::integer
            as stride
    from pair_images
),

text_sample as materialized (
    select pair_texts.embedding
    from pair_texts
    cross join pair_stride
    where pair_texts.tid % pair_stride.stride = 0
),

image_sample as materialized (
    select pair_images.embedding
    from pair_images
    cross join pair_stride
    where pair_images.iid % pair_stride.stride = 0
),

-- this part's texts, each with its max_k-th distance bound among the image sample
text_bounds as materialized (
    select
        pair_texts.tid,
        pair_texts.embedding,
        (
            select case when count(*) < {{ max_k }} then 'Infinity'::float8 else max(nearest.nip) end
            from (
                select image_sample.embedding <#> pair_texts.embedding as nip
                from image_sample
                order by nip
                limit {{ max_k }}
            ) as nearest
        ) as bound
    from pair_texts
    where pair_texts.tid % {{ parts }} = {{ part }}
),

-- every image with its bound among the text sample, a block of block_rows at a time
image_blocks as materialized (
    select
        array_agg(bounded.iid order by bounded.iid) as iids,
        array_agg(bounded.embedding order by bounded.iid) as embeddings,
        array_agg(bounded.bound order by bounded.iid) as bounds
    from (
        select
            pair_images.iid,
            pair_images.embedding,
            (
                select case when count(*) < {{ max_k }} then 'Infinity'::float8 else max(nearest.nip) end
                from (
                    select text_sample.embedding <#> pair_images.embedding as nip
                    from text_sample
                    order by nip
                    limit {{ max_k }}
                ) as nearest
            ) as bound
        from pair_images
    ) as bounded
    group by (bounded.iid - 1) / {{ block_rows }}
),

kept as (
    select kept.*
    from image_blocks
    cross join lateral (
        select
            scored.tid,
            scored.iid,
            scored.nip,
            scored.nip <= scored.text_bound as for_text_to_image,
            scored.nip <= scored.image_bound as for_image_to_text
        from (
            -- offset 0: each pair's product is computed once, then tested against both bounds
            select
                text_bounds.tid,
                block.iid,
                block.embedding <#> text_bounds.embedding as nip,
                text_bounds.bound as text_bound,
                block.bound as image_bound
            from text_bounds
            cross join (
                select
                    unnest(image_blocks.iids) as iid,
                    unnest(image_blocks.embeddings) as embedding,
                    unnest(image_blocks.bounds) as bound
            ) as block
            offset 0
        ) as scored
        where scored.nip <= scored.text_bound or scored.nip <= scored.image_bound
    ) as kept
)

select
    pair_texts.product_id as text_product_id,
    pair_images.product_id as image_product_id,
    kept.tid,
    kept.iid,
    kept.nip,
    kept.for_text_to_image,
    kept.for_image_to_text
from kept
inner join pair_texts on kept.tid = pair_texts.tid
inner join pair_images on kept.iid = pair_images.iid
{% endmacro %}


{#- One direction's lists from the kept pairs of exact_pairs (`pairs`: a
    relation or subquery, the union of every part), in exact_neighbours's
    columns except the sections: query_product_id, neighbour_rank,
    neighbour_product_id, distance (1 + nip), positive_rank.
    `positives`: a relation with product_id and nip, each query's own pair's
    a <#> b (the same number for both directions). -#}
{% macro exact_lists_from_pairs(pairs, positives, direction, max_k) %}
{%- set q, g = ('tid', 'iid') if direction == 'text_to_image' else ('iid', 'tid') %}
{%- set qp, gp = ('text_product_id', 'image_product_id') if direction == 'text_to_image'
    else ('image_product_id', 'text_product_id') %}
with

ranked as (
    select
        pairs.{{ qp }} as query_product_id,
        pairs.{{ gp }} as neighbour_product_id,
        pairs.nip,
        row_number() over (partition by pairs.{{ q }} order by pairs.nip, pairs.{{ g }}) as neighbour_rank
    from {{ pairs }} as pairs
    where pairs.for_{{ direction }}
),

listed as (
    select
        ranked.*,
        count(*) filter (where ranked.nip < positives.nip) over (partition by ranked.query_product_id) as n_closer
    from ranked
    inner join {{ positives }} as positives on ranked.query_product_id = positives.product_id
    where ranked.neighbour_rank <= {{ max_k }}
)

select
    query_product_id,
    neighbour_rank::integer as neighbour_rank,
    neighbour_product_id,
    1 + nip as distance,
    case when n_closer < {{ max_k }} then n_closer + 1 end::integer as positive_rank
from listed
{% endmacro %}
