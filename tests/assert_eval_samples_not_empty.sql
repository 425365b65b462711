{#- Every configured retrieval pair and text space scores a non-empty
    sample. An empty one fails with its reason (fct_eval_sample_sizes,
    from fct_pipeline_steps) in the message, not only a row count; the rows
    returned say the same. -#}
{{ config(severity='error') }}

{%- if execute and flags.WHICH in ['test', 'build'] %}
    {%- set sizes = adapter.get_relation(
        database=target.database, schema=ref('fct_eval_sample_sizes').schema,
        identifier=ref('fct_eval_sample_sizes').identifier
    ) %}
    {%- if sizes is not none %}
        {%- set empty = run_query(
            "select empty_reason from " ~ ref('fct_eval_sample_sizes') ~ " where is_empty order by purpose, scope"
        ) %}
        {%- if empty.rows | length > 0 %}
            {{ exceptions.raise_compiler_error(
                "Empty eval sample: " ~ (empty.columns[0].values() | join(" | "))
                ~ ". See metrics.fct_pipeline_steps and metrics.fct_rejected_inputs."
            ) }}
        {%- endif %}
    {%- endif %}
{%- endif %}

select
    purpose,
    scope,
    empty_reason
from {{ ref('fct_eval_sample_sizes') }}
where is_empty
