{#- Every configured retrieval pair and text space scores a non-empty
    sample. An empty one means its inputs could not be had (every image of
    the pair failed, say): the pair or space is not evaluable, and the rows
    returned (fct_eval_sample_sizes, reasons from fct_pipeline_steps) say
    why. By default that is a warning, so everything that could be computed
    is published and the scorecard names each pair that is not evaluable;
    with vars.strict_samples it fails the build, the reasons in the message. -#}
{%- set strict = var('strict_samples', false) %}
{{ config(severity=('error' if strict else 'warn')) }}

{%- if strict and execute and flags.WHICH in ['test', 'build'] %}
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
