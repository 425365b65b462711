{#- Post-hook of an incremental model: the rows whose keys are no longer in
    `products` go (a delete+insert build only replaces the rows it selects).
    `keys` are the columns both relations share; `where` (SQL over the alias
    products) narrows `products` to the rows that still belong. -#}
{% macro delete_removed_products(relation, products, keys=['product_id'], where=none) %}
delete from {{ relation }} as kept
where not exists (
    select 1 from {{ products }} as products
    where
        {%- for key in keys %}
        products.{{ key }} = kept.{{ key }}{{ ' and' if not loop.last }}
        {%- endfor %}
        {%- if where %}
        and {{ where }}
        {%- endif %}
)
{% endmacro %}

