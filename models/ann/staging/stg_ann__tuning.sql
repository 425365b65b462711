{{ config(enabled=family_enabled('retrieval')) }}
{#- The ANN tuning curve written by `embed-udfs tune`, one row per (target,
    setting, metric). -#}
with

source as (
    {{ job_output(source('ann', 'ann_tuning'), {'target_kind': 'text', 'target': 'text', 'pair': 'text', 'direction': 'text', 'query_space': 'text', 'gallery_space': 'text', 'relation_name': 'text', 'column_name': 'text', 'index_name': 'text', 'index_method': 'text', 'operator_class': 'text', 'index_options': 'text', 'gallery_rows': 'bigint', 'queries': 'integer', 'search_param': 'text', 'search_value': 'integer', 'iterative_scan': 'text', 'metric': 'text', 'k': 'integer', 'value': 'float8', 'exact_value': 'float8', 'bias': 'float8', 'consistency_note': 'text', 'tuned_at': 'timestamptz'}) }}
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
