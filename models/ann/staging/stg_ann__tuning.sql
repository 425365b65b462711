{{ config(enabled=family_enabled('retrieval')) }}
{#- The ANN tuning curve written by `embed-udfs tune`, one row per (target,
    setting, metric). -#}
with

source as (
    select * from {{ source('ann', 'ann_tuning') }}
),

final as (
    select
        target_kind,
        target,
        pair,
        direction,
        query_space,
        gallery_space,
        relation_name,
        column_name,
        index_name,
        index_method,
        operator_class,
        index_options,
        gallery_rows,
        queries,
        search_param,
        search_value,
        iterative_scan,
        metric,
        k,
        value::float8 as value,
        exact_value::float8 as exact_value,
        bias::float8 as bias,
        consistency_note,
        tuned_at
    from source
)

select * from final
