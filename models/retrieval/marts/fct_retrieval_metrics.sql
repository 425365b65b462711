{{ config(enabled=family_enabled('retrieval')) }}
{#- Every retrieval metric per pair, direction and section (and ALL), in
    tidy form: the per-query scores of fct_retrieval_scores averaged by the
    one aggregator (macro summarise_scores), each row with n, hits (0/1
    scores) and a 95% interval that resamples clusters of queries
    (int_eval_bootstrap_weights), the independent-query interval (Wilson for
    recall, normal approximation for means) beside it, its evidence against
    ALL, and its dedup-tolerant twin. Each row says which search
    listed the neighbours (exact or hnsw) and, for the index, the bias that
    `embed-udfs tune` measured at the ef_search the search used. -#}
{%- set search_method = 'exact' if exact_search() else 'hnsw' %}

with

summary as (
    {{- summarise_scores(
        ref('fct_retrieval_scores'),
        ['pair', 'direction', 'query_space', 'gallery_space'],
        ref('int_eval_bootstrap_weights'),
    ) }}
),

tuning as (
    select * from {{ ref('stg_ann__tuning') }}
),

-- the index figure minus the exact one, per (pair, direction, metric), at
-- the ef_search each direction's search ran with (macro ann_ef_search_used)
index_bias as (
    select
        pair,
        direction,
        query_space,
        gallery_space,
        metric || '_at_' || k as metric,
        bias
    from tuning
    where
        target_kind = 'space'
        and search_param = 'ef_search'
        and iterative_scan = 'off'
        and bias is not null
        and search_value = case direction
            when 'text_to_image' then {{ ann_ef_search_used('text_to_image') }}
            when 'image_to_text' then {{ ann_ef_search_used('image_to_text') }}
        end
),

final as (
    select
        summary.*,
        {{ sql_string(search_method) }}::text as search_method,
        case when {{ sql_string(search_method) }} = 'hnsw' then index_bias.bias end as index_bias,
        now() as computed_at
    from summary
    left join index_bias
        on
            summary.pair = index_bias.pair
            and summary.direction = index_bias.direction
            and summary.query_space = index_bias.query_space
            and summary.gallery_space = index_bias.gallery_space
            and summary.metric = index_bias.metric
)

select * from final
