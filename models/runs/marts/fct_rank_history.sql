{{ config(
    enabled=family_enabled('history') and family_enabled('retrieval'),
    materialized='incremental',
    unique_key=['run_id', 'pair', 'direction', 'product_id'],
    on_schema_change='append_new_columns'
) }}

{#- Every query's positive rank in every run, appended: fct_retrieval_ranks
    stamped with the dbt invocation and the run's configuration hash
    (dim_runs), so that fct_rank_moves can say which products a change moved,
    not only that a metric did. max_k is the run's cut-off: a null rank
    lies beyond it. -#}

with

-- the sample's gallery, the one the metrics' moves are read against
ranks as (
    select * from {{ ref('fct_retrieval_ranks') }}
    where gallery_scope = 'sample'
),

runs as (
    select * from {{ ref('dim_runs') }}
    where run_id = '{{ invocation_id }}'
),

final as (
    select
        '{{ invocation_id }}'::text as run_id,
        '{{ run_started_at }}'::timestamptz as run_started_at,
        runs.config_hash,
        ranks.pair,
        ranks.direction,
        ranks.query_space,
        ranks.gallery_space,
        ranks.product_id,
        ranks.collection_section,
        ranks.positive_rank,
        ranks.dedup_tolerant_rank,
        ranks.positive_distance,
        {{ max_k() }}::integer as max_k
    from ranks
    left join runs on true
)

select * from final
