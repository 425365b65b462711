{#- What each step on the way to the eval sample did, per section (and
    ALL): rows in, rows out, and the rows behind each outcome and reason.
      1 cleaning  per text space (scope = space): inputs rejected as empty
                  text (removed), inputs whose recipe stripped boilerplate or
                  noise words, inputs truncated to the space's max_words
                  (changed; one input can be both)
      2 dedup     the catalog: duplicates removed, by link reason (see
                  int_duplicate_groups); one representative per group kept
      3 sampling  the candidates (after dedup when vars.eval_dedup): products
                  left out, by reason (no valid vector, section too small,
                  section cap, sample full), per sample: `eval_sample`
                  (retrieval, on the paired spaces) and `label_sample` (the
                  label metrics, on the text spaces)
    Per (step, scope, section) the `removed` rows and the `kept` row add up
    to rows_in; `changed` rows count inputs kept but altered. -#}

with

space_inputs as (
    select * from {{ ref('int_space_inputs') }}
),

groups as (
    select * from {{ ref('int_duplicate_groups') }}
),

candidates as (
    select * from {{ ref('int_eval_candidates') }}
),

label_candidates as (
    select * from {{ ref('int_label_candidates') }}
),

-- one row per (step, scope, section, row) outcome
outcomes as (
    select
        1 as step_order,
        'cleaning' as step,
        space as scope,
        collection_section,
        case when rejection_reason is null then 'kept' else 'removed' end as outcome,
        coalesce(rejection_reason, 'kept') as reason
    from space_inputs
    where modality = 'text'

    union all

    select
        1 as step_order,
        'cleaning' as step,
        space as scope,
        collection_section,
        'changed' as outcome,
        'boilerplate or noise words removed' as reason
    from space_inputs
    where modality = 'text' and n_noise_words_removed > 0

    union all

    select
        1 as step_order,
        'cleaning' as step,
        space as scope,
        collection_section,
        'changed' as outcome,
        'truncated to max_words' as reason
    from space_inputs
    where modality = 'text' and is_truncated

    union all

    select
        2 as step_order,
        'dedup' as step,
        'catalog' as scope,
        collection_section,
        case when is_representative then 'kept' else 'removed' end as outcome,
        case when is_representative then 'kept' else 'duplicate: ' || reason end as reason
    from groups

    union all

    select
        3 as step_order,
        'sampling' as step,
        'eval_sample' as scope,
        collection_section,
        case when is_sampled then 'kept' else 'removed' end as outcome,
        coalesce(exclusion_reason, 'kept') as reason
    from candidates

    union all

    select
        3 as step_order,
        'sampling' as step,
        'label_sample' as scope,
        collection_section,
        case when is_sampled then 'kept' else 'removed' end as outcome,
        coalesce(exclusion_reason, 'kept') as reason
    from label_candidates
),

counted as (
    select
        step_order,
        step,
        scope,
        {{ section_label('collection_section') }} as section,
        outcome,
        reason,
        count(*) as n_rows
    from outcomes
    group by grouping sets (
        (step_order, step, scope, collection_section, outcome, reason),
        (step_order, step, scope, outcome, reason)
    )
),

totals as (
    select
        step,
        scope,
        section,
        sum(n_rows) filter (where outcome in ('kept', 'removed')) as rows_in,
        coalesce(sum(n_rows) filter (where outcome = 'kept'), 0) as rows_out
    from counted
    group by step, scope, section
),

final as (
    select
        counted.step_order,
        counted.step,
        counted.scope,
        counted.section,
        totals.rows_in,
        totals.rows_out,
        counted.outcome,
        counted.reason,
        counted.n_rows,
        counted.n_rows::float8 / nullif(totals.rows_in, 0) as share_of_rows_in,
        now() as computed_at
    from counted
    inner join totals
        on
            counted.step = totals.step
            and counted.scope = totals.scope
            and counted.section = totals.section
)

select * from final
