{#- vars.text_strip_store_name removes each product's store_name from its
    text, from its name too. That is right for a seller ("[Shop4U] Red
    Bag"), but when store_name holds brands ("LEGO") it takes the brand out
    of the product's own name ("lego technic" -> "technic"). Warns when the
    store name occurs in more than half of the product names that have one
    (int_product_texts_cleaned.is_store_name_in_name): then store_name
    probably holds brands, and `text_strip_store_name: false` keeps them. -#}
{{ config(severity='warn') }}

{%- if var('text_strip_store_name', true) %}

with

products as (
    select * from {{ ref('int_product_texts_cleaned') }}
    where is_store_name_in_name is not null
),

shares as (
    select
        count(*) as n_products,
        count(*) filter (where is_store_name_in_name) as n_store_name_in_name
    from products
)

select
    n_products,
    n_store_name_in_name,
    'store_name occurs in ' || n_store_name_in_name || ' of ' || n_products
    || ' product names, so it looks like a brand, and clean_no_boilerplate removes it from the'
    || ' product''s own name; set vars.text_strip_store_name: false if store_name holds brands'
        as warning
from shares
where n_store_name_in_name > 0.5 * n_products

{%- else %}

-- store names are kept (vars.text_strip_store_name is false): nothing to warn about
select
    null::bigint as n_products,
    null::bigint as n_store_name_in_name,
    null::text as warning
where false

{%- endif %}
