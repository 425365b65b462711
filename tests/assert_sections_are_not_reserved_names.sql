{#- Warns when the catalog has a section named like a row of the marts (`ALL`,
    the overall row; `unknown`, the products without a section). Staging has
    renamed it to `<name> (section)`, so its figures stay its own; rename it
    in the catalog to silence this. -#}
{{ config(severity='warn') }}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

renamed as (
    select
        collection_section,
        count(*) as n_products
    from products
    where is_section_renamed
    group by collection_section
)

select * from renamed
