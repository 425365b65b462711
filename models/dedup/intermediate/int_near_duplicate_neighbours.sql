{{ config(
    enabled=family_enabled('dedup'),
    materialized='incremental',
    unique_key=['product_id', 'neighbour_id'],
    incremental_strategy='delete+insert',
    on_schema_change='sync_all_columns',
    pre_hook=["{{ set_ef_search() }}", "set local enable_seqscan = off"],
    post_hook=["{{ delete_stale_near_duplicates(this, ref('int_dedup_vectors')) }}"],
) }}

{#- Near-duplicate candidates, one row per unordered product pair (product_id
    < neighbour_id): cosine distance below vars.near_duplicate_max_distance in
    the space marked near_duplicates: true, among each product's top
    vars.near_duplicate_k neighbours from that space's HNSW index. Empty when
    no space is marked.

    Incremental: a build searches again only from the products whose vector
    changed since the last build found pairs (int_dedup_vectors.changed_at
    after this table's latest found_at), and the post_hook drops the pairs
    with an end that changed after the pair was found or is gone. The result
    equals a full rebuild's unless more than near_duplicate_k products lie
    within the threshold of one product (a list cut at k depends on which end
    searched).

    enable_seqscan is off for this model's transaction only: on small
    catalogs (the demo's 2,400 products) the planner's cost model rates a
    sequential scan with a top-N sort per product (N^2 distances) cheaper than
    the HNSW index scan, though it is 3x slower there; on larger ones it picks
    the index by itself. analyses/near_duplicate_search.sql shows the plan. -#}
{%- set spaces = near_duplicate_space_names() %}

with

changed_vectors as (
    select * from {{ ref('int_dedup_vectors') }}
    {%- if is_incremental() %}
    where changed_at > (select coalesce(max(found_at), '-infinity'::timestamptz) from {{ this }})
    {%- endif %}
),

neighbours as (
    {%- if spaces %}
        {{ near_duplicate_neighbours(ref('int_dedup_vectors'), spaces[0], queries='changed_vectors') }}
    {%- else %}
        select
            null::text as product_id,
            null::text as neighbour_id,
            null::float8 as distance
        where false
    {%- endif %}
),

final as (
    select
        least(product_id, neighbour_id) as product_id,
        greatest(product_id, neighbour_id) as neighbour_id,
        {{ sql_string(spaces[0] if spaces else none) }}::text as space,
        min(distance) as distance,
        now() as found_at
    from neighbours
    group by least(product_id, neighbour_id), greatest(product_id, neighbour_id)
)

select * from final
