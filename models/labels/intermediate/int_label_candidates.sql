{#- Every product the label sample is drawn from, with its fate: sampled, or
    why not. Eligible: a valid vector in every text space the label metrics
    score; the image spaces play no part, so a product whose image failed
    still counts. Products without a section (`unknown`) stay candidates
    here, as in the retrieval sample, and int_label_vectors leaves them out.
    The shuffle, round robin, section minimum and cap are
    sampled_candidates' (macros/eval_sample.sql), the same as the retrieval
    sample's, so where every vector is valid the two samples hold the same
    sectioned products. -#}
{%- set spaces = label_space_names() %}

-- both inputs stay in the DAG, whichever vars.eval_dedup picks:
-- depends_on: {{ ref('int_products_deduped') }}
-- depends_on: {{ ref('int_duplicate_groups') }}

{%- set eligibility %}
    -- one row per product; eligible: a valid vector in every text space
    select
        products.product_id,
        complete.product_id is not null as is_eligible
    from {{ ref('int_duplicate_groups') }} as products
    left join ({{ products_with_valid_vectors(spaces) }}) as complete
        on products.product_id = complete.product_id
{%- endset %}

{{ sampled_candidates(eligibility, 'no valid vector in every text space') }}
