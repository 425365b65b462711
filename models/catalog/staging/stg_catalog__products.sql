{#- Section values that name rows of the marts rather than a section: `ALL`
    is the overall row of every mart, `unknown` holds the products without a
    section. A catalog section with one of these names is renamed here
    (`ALL (section)`), so it never merges with those rows, and
    tests/assert_sections_are_not_reserved_names.sql warns about it. -#}
{%- set reserved = reserved_section_names() %}
{%- set cluster_column = bootstrap_cluster_column() %}
{%- set cluster_value = "nullif(trim(" ~ adapter.quote(cluster_column) ~ "::text), '')"
    if cluster_column else "null::text" %}

with

products as (
    select * from {{ source('catalog', 'products') }}
),

renamed as (
    select
        product_id::text as product_id,
        nullif(trim(product_name), '') as product_name,
        nullif(trim(product_description), '') as product_description,
        nullif(trim(collection_section), '') as section_given,
        nullif(trim(store_name), '') as store_name,
        nullif(trim(image_uri), '') as image_uri,
        -- the cluster the interval bootstrap resamples (vars.bootstrap_cluster_column)
        {{ cluster_value }} as bootstrap_cluster_value
    from products
),

sectioned as (
    select
        product_id,
        product_name,
        product_description,
        case
            when section_given is null then {{ sql_string(missing_section_label()) }}
            when {{ in_list('section_given', reserved) }} then section_given || ' (section)'
            else section_given
        end as collection_section,
        section_given is null as is_section_missing,
        coalesce({{ in_list('section_given', reserved) }}, false) as is_section_renamed,
        store_name,
        image_uri,
        bootstrap_cluster_value
    from renamed
),

final as (
    select
        *,
        {{ raw_product_text(['product_name', 'product_description']) }} as text_raw,
        {{ clean_text(raw_product_text(['product_name', 'product_description'])) }} as text_clean
    from sectioned
)

select * from final
