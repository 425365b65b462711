{#- How many products each configured consumer of an eval sample scores:
    one row per retrieval pair (the retrieval sample, int_eval_vectors) and
    per text space (the label sample, int_label_vectors). An empty sample
    carries the reason, taken from fct_pipeline_steps: what sampling removed
    and why, what cleaning rejected in a text space, or that no sampled
    product has a section. tests/assert_eval_samples_not_empty.sql fails on
    an empty one; the scorecard prints the same reason. -#}
{%- set pairs = embedding_pairs() %}
{%- set spaces = label_space_names() %}

with

eval_vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

label_vectors as (
    select * from {{ ref('int_label_vectors') }}
),

label_sample as (
    select * from {{ ref('int_label_sample') }}
),

steps as (
    select * from {{ ref('fct_pipeline_steps') }}
    where section = 'ALL'
),

consumers as (
    {%- for pair in pairs %}
        select
            'retrieval' as purpose,
            {{ sql_string(pair.name) }} as scope,
            'eval_sample' as sample_scope,
            null::text as text_space,
            count(distinct eval_vectors.product_id) as n_products
        from eval_vectors
        where eval_vectors.space = {{ sql_string(pair.text_space) }}
        union all
    {%- endfor %}
    {%- for space in spaces %}
        select
            'label' as purpose,
            {{ sql_string(space) }} as scope,
            'label_sample' as sample_scope,
            {{ sql_string(space) }} as text_space,
            count(distinct label_vectors.product_id) as n_products
        from label_vectors
        where label_vectors.space = {{ sql_string(space) }}
        union all
    {%- endfor %}
    select
        null as purpose,
        null as scope,
        null as sample_scope,
        null::text as text_space,
        0 as n_products
    where false
),

sampling_removed as (
    select
        scope as sample_scope,
        max(rows_in) as rows_in,
        string_agg(
            reason || ' (' || n_rows || ' of ' || rows_in || ')', '; '
            order by n_rows desc, reason asc
        ) as removed
    from steps
    where step = 'sampling' and outcome = 'removed'
    group by scope
),

cleaning_removed as (
    select
        scope as text_space,
        string_agg(
            reason || ' (' || n_rows || ' of ' || rows_in || ')', '; '
            order by n_rows desc, reason asc
        ) as removed
    from steps
    where step = 'cleaning' and outcome = 'removed'
    group by scope
),

label_sampled as (
    select count(*) as n_sampled from label_sample
),

final as (
    select
        consumers.purpose,
        consumers.scope,
        consumers.n_products,
        consumers.n_products = 0 as is_empty,
        case
            when consumers.n_products = 0
                then consumers.purpose || ' sample for ' || consumers.scope || ' is empty: '
                    || concat_ws(
                        '; ',
                        case
                            when sampling_removed.rows_in is null and (consumers.purpose = 'retrieval' or label_sampled.n_sampled = 0)
                                then 'no candidate products (is the catalog empty?)'
                        end,
                        'sampling removed ' || sampling_removed.removed,
                        'cleaning rejected ' || cleaning_removed.removed,
                        case
                            when consumers.purpose = 'label' and label_sampled.n_sampled > 0
                                then 'none of the ' || label_sampled.n_sampled || ' sampled products has a collection_section'
                        end
                    )
        end as empty_reason,
        now() as computed_at
    from consumers
    cross join label_sampled
    left join sampling_removed on consumers.sample_scope = sampling_removed.sample_scope
    left join cleaning_removed on consumers.text_space = cleaning_removed.text_space
)

select * from final
