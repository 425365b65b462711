{{ config(enabled=family_enabled('dedup')) }}
-- The near-duplicate search exactly as int_duplicate_pairs runs it: for each
-- product in the space marked `near_duplicates: true`, its top
-- vars.near_duplicate_k neighbours from the space's HNSW index, kept when the
-- cosine distance is below vars.near_duplicate_max_distance. The model runs it
-- with hnsw.ef_search set and enable_seqscan off (see its header). To see
-- that it is one index scan per product and never an N^2 scan:
--   dbt compile --select near_duplicate_search
--   psql -c "set hnsw.ef_search = 100; set enable_seqscan = off; explain
--            $(cat target/compiled/embed_metrics/analyses/near_duplicate_search.sql)"
-- On the demo catalog the plan is (tests/python/test_dedup.py checks it):
--   Nested Loop
--     -> Seq Scan on int_dedup_vectors queries
--     -> Subquery Scan on nearest
--          Filter: ((distance < '0.02') AND (product_id <> queries.product_id))
--          -> Limit
--               -> Index Scan using int_dedup_vectors_embedding_idx on int_dedup_vectors gallery
--                    Order By: ((embedding)::vector(384) <=> (queries.embedding)::vector(384))
{%- set spaces = near_duplicate_space_names() %}
{%- if spaces %}
    {{ near_duplicate_neighbours(ref('int_dedup_vectors'), spaces[0]) }}
{%- else %}
    select 'no space is marked near_duplicates: true in vars.embed_spaces' as note
{%- endif %}
