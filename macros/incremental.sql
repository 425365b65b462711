{#- Post-hook of an incremental model keyed on product_id: the rows of products that
    are no longer in `products` go (a delete+insert build only replaces the rows it
    selects). -#}
{% macro delete_removed_products(relation, products) %}
delete from {{ relation }} as kept
where not exists (
    select 1 from {{ products }} as products
    where products.product_id = kept.product_id
)
{% endmacro %}
