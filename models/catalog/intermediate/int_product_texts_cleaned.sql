{{ config(
    materialized='incremental',
    unique_key='product_id',
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=["{{ delete_removed_products(this, ref('stg_catalog__product_ids')) }}"],
) }}

{#- Every text recipe for every product, on the default fields (product_name,
    product_description): what each cleaning step leaves, and how many words
    each step removed. The dedup step compares vars.dedup_text_variant.

    Incremental: source_hash covers every input of the recipes (the product's
    fields, the compiled noise patterns and vars.text_strip_store_name), so a
    build cleans only the products whose hash changed and the post_hook drops
    the products that left the catalog. A change to the cleaning macros
    themselves needs `dbt build --full-refresh`. -#}
{%- set fields = default_text_fields() %}
{%- set noise = ['patterns.boilerplate_pattern', 'patterns.noise_pattern', 'patterns.description_noise_pattern', 'products.store_name'] %}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

patterns as (
    select
        compiled.*,
        md5(compiled::text) as patterns_hash
    from {{ ref('int_noise_patterns_compiled') }} as compiled
),

hashed as (
    select
        products.*,
        md5(concat_ws(
            chr(31),
            products.product_id,
            coalesce(products.product_name, chr(30)),
            coalesce(products.product_description, chr(30)),
            products.collection_section,
            coalesce(products.store_name, chr(30)),
            patterns.patterns_hash,
            {{ sql_string(var('text_strip_store_name') | string) }}
        )) as source_hash
    from products
    cross join patterns
),

changed as (
    select hashed.*
    from hashed
    {%- if is_incremental() %}
    left join {{ this }} as previous
        on hashed.product_id = previous.product_id
    where previous.source_hash is distinct from hashed.source_hash
    {%- endif %}
),

recipes as (
    select
        products.product_id,
        products.collection_section,
        products.store_name,
        products.source_hash,
        {{ clean_text('products.product_name') }} as clean_name,
        {{ clean_text('products.store_name') }} as clean_store_name,
        {{ product_text('raw', fields, *noise) }} as text_raw,
        {{ product_text('clean', fields, *noise) }} as text_clean,
        {{ product_text('clean_no_boilerplate', fields, *noise) }} as text_clean_no_boilerplate
    from changed as products
    cross join patterns
),

-- a store name inside the product's own name is likely a brand (tests/assert_store_name_is_not_a_brand.sql)
checked as (
    select
        product_id,
        collection_section,
        store_name,
        case
            when clean_store_name is not null and clean_name is not null
                then clean_name ~ {{ whole_words_pattern(regex_escaped('clean_store_name')) }}
        end as is_store_name_in_name,
        text_raw,
        text_clean,
        text_clean_no_boilerplate,
        source_hash
    from recipes
),

final as (
    select
        *,
        {%- for variant in text_variants() %}
            coalesce({{ word_count('text_' ~ variant) }}, 0) as n_words_{{ variant }},
        {%- endfor %}
        coalesce({{ word_count('text_clean') }}, 0)
        - coalesce({{ word_count('text_clean_no_boilerplate') }}, 0) as n_noise_words_removed
    from checked
)

select * from final
