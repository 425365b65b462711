with

products as (
    select * from {{ source('catalog', 'products') }}
),

renamed as (
    select
        product_id::text as product_id,
        nullif(trim(product_name), '') as product_name,
        nullif(trim(product_description), '') as product_description,
        coalesce(nullif(trim(collection_section), ''), 'unknown') as collection_section,
        nullif(trim(collection_section), '') is null as is_section_missing,
        nullif(trim(store_name), '') as store_name,
        nullif(trim(image_uri), '') as image_uri
    from products
),

final as (
    select
        *,
        {{ raw_product_text(['product_name', 'product_description']) }} as text_raw,
        {{ clean_text(raw_product_text(['product_name', 'product_description'])) }} as text_clean
    from renamed
)

select * from final
