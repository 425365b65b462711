{#- The balanced, seeded sample both eval samples share (int_eval_candidates
    for retrieval, int_label_candidates for the label metrics); they differ
    only in which products are eligible. `eligibility` is a select of
    (product_id, is_eligible) over every product; `ineligible_reason` is the
    exclusion_reason of the products it rules out.
    Candidates are one representative per duplicate group
    (int_products_deduped) when vars.eval_dedup is true, else every product
    (int_duplicate_groups); either way each carries its duplicate group and
    whether its section is missing, through to the samples.
    Each section's eligible products are shuffled by a hash seeded with
    vars.eval_seed and taken round robin (every section's 1st, then every
    section's 2nd, ...) until vars.eval_sample_size. A section with fewer
    eligible products than vars.eval_section_min is left out and reported as
    too small; a section takes at most vars.eval_section_cap products (null:
    no cap; auto: vars.eval_section_cap_factor times the median eligible size
    of the sections that meet the minimum, so only a section far larger than
    the typical one is capped). -#}
{% macro sampled_candidates(eligibility, ineligible_reason) %}
{%- set seed = var('eval_seed') %}
{%- set section_min = var('eval_section_min') %}
{%- set section_cap = var('eval_section_cap') %}
{%- set section_cap_factor = var('eval_section_cap_factor') %}
{%- set source_model = 'int_products_deduped' if var('eval_dedup') else 'int_duplicate_groups' %}

with

-- vars.eval_dedup picks one representative per duplicate group, or every product
products as (
    select * from {{ ref(source_model) }}
),

candidates as (
    select
        product_id,
        collection_section,
        is_section_missing,
        duplicate_group_id
    from products
),

eligibility as (
    {{ eligibility }}
),

checked as (
    select
        candidates.product_id,
        candidates.collection_section,
        candidates.is_section_missing,
        candidates.duplicate_group_id,
        eligibility.is_eligible
    from candidates
    inner join eligibility on candidates.product_id = eligibility.product_id
),

sections as (
    select
        collection_section,
        count(*) filter (where is_eligible) as section_n_eligible
    from checked
    group by collection_section
),

-- the cap in force for this sample: a number, derived from the section sizes (auto), or none
section_cap as (
    select
        {%- if section_cap == 'auto' %}
        ceil(
            {{ section_cap_factor | float }} * percentile_cont(0.5) within group (order by section_n_eligible)
        )::int as section_cap
    from sections
    where section_n_eligible >= {{ section_min }}
        {%- else %}
        {{ section_cap | int if section_cap is not none else 'null' }}::int as section_cap
        {%- endif %}
),

shuffled as (
    select
        checked.*,
        sections.section_n_eligible,
        section_cap.section_cap,
        row_number() over (
            partition by checked.collection_section, checked.is_eligible
            order by md5(checked.product_id || ':{{ seed }}'), checked.product_id
        ) as shuffled_rank
    from checked
    inner join sections on checked.collection_section = sections.collection_section
    cross join section_cap
),

screened as (
    select
        *,
        case when is_eligible then shuffled_rank end as section_rank,
        case
            when not is_eligible then '{{ ineligible_reason }}'
            when section_n_eligible < {{ section_min }} then 'section too small: fewer eligible products than eval_section_min'
            when shuffled_rank > section_cap then 'section capped: beyond eval_section_cap'
        end as screened_out_reason
    from shuffled
),

interleaved as (
    select
        screened.*,
        row_number() over (
            partition by screened.screened_out_reason is null
            order by
                screened.section_rank,
                md5(screened.collection_section || ':{{ seed }}'),
                screened.collection_section
        ) as interleaved_rank
    from screened
),

ranked as (
    select
        *,
        case when screened_out_reason is null then interleaved_rank end as sample_rank
    from interleaved
),

final as (
    select
        product_id,
        collection_section,
        is_section_missing,
        duplicate_group_id,
        is_eligible,
        section_n_eligible,
        section_cap,
        section_rank,
        sample_rank,
        coalesce(sample_rank <= {{ var('eval_sample_size') }}, false) as is_sampled,
        coalesce(
            screened_out_reason,
            case when sample_rank > {{ var('eval_sample_size') }} then 'sample full: beyond eval_sample_size' end
        ) as exclusion_reason
    from ranked
)

select * from final
{% endmacro %}


{#- The products with a valid vector in every one of `spaces` (none when the
    list is empty), one row each. -#}
{% macro products_with_valid_vectors(spaces) %}
    select product_id
    from {{ ref('int_vectors_validated') }}
    where
        is_valid
        and {{ in_list('space', spaces) }}
    group by product_id
    having count(distinct space) = {{ spaces | length }}
{% endmacro %}
