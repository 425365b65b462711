{#- Section values that name rows of the marts rather than a section: `ALL`
    is the overall row of every mart, `unknown` holds the products without a
    section, `other` the small sections folded together. A catalog section
    with one of these names is renamed here (`ALL (section)`), so it never
    merges with those rows, and tests/assert_sections_are_not_reserved_names.sql
    warns about it. A section that is a path (vars.section_separator, e.g.
    "Toys | Puzzles") is normalised first: segments trimmed, empty ones
    dropped, joined by " | "; the check applies to its first segment, the
    level-1 section (macros/section_levels.sql). -#}
{%- set reserved = reserved_section_names() %}
{%- set cluster_column = bootstrap_cluster_column() %}
{%- set cluster_value = adapter.quote(cluster_column) if cluster_column else "null::text" %}

with

-- only the contract's columns, under the names vars.products_columns gives them,
-- and the column vars.bootstrap_cluster_column names, if any
products as (
    select
        {{ input_column('products_columns', 'product_id') }} as product_id,
        {{ input_column('products_columns', 'product_name') }} as product_name,
        {{ input_column('products_columns', 'product_description') }} as product_description,
        {{ input_column('products_columns', 'collection_section') }} as collection_section,
        {{ input_column('products_columns', 'store_name') }} as store_name,
        {{ input_column('products_columns', 'image_uri') }} as image_uri,
        {{ cluster_value }} as bootstrap_cluster_value
    from {{ source('catalog', 'products') }}
),

renamed as (
    select
        product_id::text as product_id,
        nullif(trim(product_name::text), '') as product_name,
        nullif(trim(product_description::text), '') as product_description,
        {{ section_path("nullif(trim(collection_section::text), '')") }} as section_given,
        nullif(trim(store_name::text), '') as store_name,
        nullif(trim(image_uri::text), '') as image_uri,
        -- the cluster the interval bootstrap resamples (vars.bootstrap_cluster_column)
        nullif(trim(bootstrap_cluster_value::text), '') as bootstrap_cluster_value
    from products
),

sectioned as (
    select
        product_id,
        product_name,
        product_description,
        case
            when section_given is null then {{ sql_string(missing_section_label()) }}
            when {{ in_list(section_head('section_given'), reserved) }}
                then {{ section_head('section_given') }} || ' (section)'
                    || substr(section_given, length({{ section_head('section_given') }}) + 1)
            else section_given
        end as collection_section,
        section_given is null as is_section_missing,
        coalesce({{ in_list(section_head('section_given'), reserved) }}, false) as is_section_renamed,
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
