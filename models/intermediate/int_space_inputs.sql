{#- What each space's model is fed, one row per (space, product): the text
    recipe (fields, variant, prompt) or the image URI. embed-udfs backfill
    reads this table, so every text rule lives here in SQL. -#}
with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

space_inputs as (
    {%- for space in embedding_spaces() %}
        select
            '{{ space.name }}'::text as space,
            '{{ space.modality }}'::text as modality,
            product_id,
            collection_section,
            {%- if space.modality == 'image' %}
                image_uri as body
            {%- else %}
                {%- set fields = space.get('text_fields', ['product_name', 'product_description']) %}
                {%- if space.get('text_variant', 'clean') == 'raw' %}
                    {{ raw_product_text(fields) }} as body
                {%- else %}
                    {{ clean_text(raw_product_text(fields)) }} as body
                {%- endif %}
            {%- endif %}
        from products
        {{ "union all" if not loop.last }}
    {%- endfor %}
),

final as (
    select
        space_inputs.space,
        space_inputs.product_id,
        space_inputs.collection_section,
        space_inputs.modality,
        case
            when space_inputs.body is null then null
            when space_inputs.modality = 'text' then spaces.prompt || space_inputs.body
            else space_inputs.body
        end as model_input,
        case
            when space_inputs.body is not null then null
            when space_inputs.modality = 'text' then 'empty text: the product has no name or description left after cleaning'
            else 'missing image: image_uri is null or empty'
        end as rejection_reason
    from space_inputs
    inner join {{ embedding_spaces_values() }}
        on space_inputs.space = spaces.space
)

select * from final
