{#- Every product the retrieval sample is drawn from, with its fate: sampled,
    or why not. Eligible: a valid vector in every paired space (the
    retrieval pairs are scored on the same products). The shuffle, round
    robin, section minimum and cap are sampled_candidates' (macros/eval_sample.sql). -#}

-- both inputs stay in the DAG, whichever vars.eval_dedup picks:
-- depends_on: {{ ref('int_products_deduped') }}
-- depends_on: {{ ref('int_duplicate_groups') }}

{%- set eligibility %}
    -- one row per product; is_evaluable: a valid vector in every paired space
    select
        product_id,
        is_evaluable as is_eligible
    from {{ ref('int_duplicate_groups') }}
{%- endset %}

{{ sampled_candidates(eligibility, 'no valid vector in every paired space') }}
