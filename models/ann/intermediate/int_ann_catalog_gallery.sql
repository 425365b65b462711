{{ config(enabled=family_enabled('ann_tuning'), materialized='view') }}

{#- The whole-catalog galleries `embed-udfs tune` measures where the catalog
    is searched through an index: every row of int_catalog_gallery_vectors,
    under an enforced contract that the tune exposure names. A view, so a
    search through it uses the table's partial HNSW index of each space
    (macro index_catalog_gallery). One plain select, without the usual CTEs:
    PostgreSQL does not flatten a view that has a WITH clause into the query
    that reads it, and the index on the table's expression is then out of
    the planner's reach. -#}

select
    space,
    product_id,
    collection_section,
    embedding
from {{ ref('int_catalog_gallery_vectors') }}
