{{ config(
    materialized='incremental',
    unique_key=['space', 'product_id'],
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook=[
        "{{ delete_removed_products(this, ref('int_product_texts_cleaned')) }}",
        "delete from {{ this }} where not {{ in_list('space', embedding_spaces() | map(attribute='name') | list) }}",
    ],
) }}

{#- What each space's model is fed, one row per (space, product): the text
    recipe (fields, variant, prompt, truncated to the space's max_words) or
    the image URI. embed-udfs backfill reads this table, so every text rule
    lives here in SQL (recipes: macros/text_recipes.sql).

    A space on the default fields reads its recipe from
    int_product_texts_cleaned (the same product_text calls), which cleans a
    product again only when it changes; only a space with text_fields of its
    own runs the cleaning here, over the whole catalog. So a change to the
    cleaning macros reaches these spaces after a full refresh of
    int_product_texts_cleaned. The noise patterns are read only for the
    spaces cleaned here; depends_on keeps them a parent whatever the spaces.

    Incremental: input_key is the md5 of everything a row is made of (the
    product's fields in stg_catalog__products, the compiled noise patterns,
    vars.text_strip_store_name and the space's configuration), so a build
    computes only the rows whose key changed, and the post_hooks drop the
    products that left the catalog (those int_product_texts_cleaned, a table
    of every current product, no longer holds) and the spaces no longer
    configured. A
    change to the recipe macros themselves needs `dbt build --full-refresh
    --select int_product_texts_cleaned int_space_inputs`. -#}
{%- set noise = ['patterns.boilerplate_pattern', 'patterns.noise_pattern', 'patterns.description_noise_pattern', 'products.store_name'] %}
{%- set cleaning = namespace(needed=false) %}
{%- for space in embedding_spaces() if space.modality == 'text' %}
    {%- set cleaning.needed = cleaning.needed or space.get('text_fields', default_text_fields()) != default_text_fields() %}
{%- endfor %}
{#- a table from before input_key existed is rebuilt whole, once (the build adds the column) #}
{%- set keyed = is_incremental()
    and 'input_key' in adapter.get_columns_in_relation(this) | map(attribute='name') | list %}
-- depends_on: {{ ref('int_noise_patterns_compiled') }}

with

-- what every row of a product is made of, whatever the space: its catalog fields,
-- the noise patterns and the store-name setting (only these columns: the view's
-- own text recipes cost a regex pass per product)
products as (
    select
        catalog_products.product_id,
        catalog_products.product_name,
        catalog_products.product_description,
        catalog_products.collection_section,
        catalog_products.store_name,
        catalog_products.image_uri,
        md5(concat_ws(
            chr(31),
            catalog_products.product_id,
            coalesce(catalog_products.product_name, chr(30)),
            coalesce(catalog_products.product_description, chr(30)),
            catalog_products.collection_section,
            coalesce(catalog_products.store_name, chr(30)),
            coalesce(catalog_products.image_uri, chr(30)),
            (select md5(compiled::text) from {{ ref('int_noise_patterns_compiled') }} as compiled),
            {{ sql_string(var('text_strip_store_name') | string) }}
        )) as product_key
    from {{ ref('stg_catalog__products') }} as catalog_products
),

cleaned_texts as (
    select * from {{ ref('int_product_texts_cleaned') }}
),
{%- if cleaning.needed %}

patterns as (
    select * from {{ ref('int_noise_patterns_compiled') }}
),
{%- endif %}

spaces as (
    select * from {{ ref('int_embedding_spaces') }}
),

space_inputs as (
    {%- for space in embedding_spaces() %}
        {%- set input_key = "md5(products.product_key || " ~ sql_string(local_md5(tojson(space, sort_keys=true))) ~ ")" %}
        select
            {{ sql_string(space.name) }}::text as space,
            {{ sql_string(space.modality) }}::text as modality,
            products.product_id,
            products.collection_section,
            {{ input_key }} as input_key,
            {%- if space.modality == 'image' %}
                products.image_uri as body,
                null::text as clean_body,
                null::text as text_variant,
                null::integer as max_words,
                null::integer as prompt_words
            {%- else %}
                {%- set fields = space.get('text_fields', default_text_fields()) %}
                {%- set variant = checked_text_variant(space.get('text_variant', 'clean'), "Space '" ~ space.name ~ "': text_variant") %}
                {%- set is_cleaned = fields == default_text_fields() %}
                {%- if is_cleaned %}
                    cleaned_texts.text_{{ variant }} as body,
                    {{ 'cleaned_texts.text_clean' if variant == 'clean_no_boilerplate' else 'null::text' }}
                        as clean_body,
                {%- else %}
                    {{ product_text(variant, fields, *noise) }} as body,
                    {{ product_text('clean', fields, *noise) if variant == 'clean_no_boilerplate' else 'null::text' }}
                        as clean_body,
                {%- endif %}
                {{ sql_string(variant) }}::text as text_variant,
                {{ space_max_words(space) }}::integer as max_words,
                {{ (space.get('prompt') or '').split() | length }}::integer as prompt_words
            {%- endif %}
        from products
        {%- if space.modality == 'text' and is_cleaned %}
        -- one row per product either way: the cleaned texts hold every product, null texts too
        left join cleaned_texts on products.product_id = cleaned_texts.product_id
        {%- elif space.modality == 'text' %}
        cross join patterns
        {%- endif %}
        {%- if keyed %}
        -- only the rows whose key changed (new rows have none)
            left join {{ this }} as previous
                on
                    previous.space = {{ sql_string(space.name) }}
                    and products.product_id = previous.product_id
            where previous.input_key is distinct from {{ input_key }}
        {%- endif %}
        {{ "union all" if not loop.last }}
    {%- endfor %}
),

measured as (
    select
        *,
        prompt_words + {{ word_count('body') }} as n_words,
        case
            when text_variant = 'clean_no_boilerplate'
                then coalesce({{ word_count('clean_body') }}, 0) - coalesce({{ word_count('body') }}, 0)
            when modality = 'text' then 0
        end as n_noise_words_removed
    from space_inputs
),

final as (
    select
        measured.space,
        measured.product_id,
        measured.collection_section,
        measured.modality,
        case
            when measured.body is null then null
            when measured.modality = 'text'
                then spaces.prompt || {{ truncate_words('measured.body', 'measured.max_words - measured.prompt_words') }}
            else measured.body
        end as model_input,
        case
            when measured.body is not null then null
            when measured.modality = 'text' and measured.text_variant = 'clean_no_boilerplate'
                then 'empty text: nothing left after cleaning and removing boilerplate and noise tokens'
            when measured.modality = 'text' then 'empty text: the product has no name or description left after cleaning'
            else 'missing image: image_uri is null or empty'
        end as rejection_reason,
        measured.text_variant,
        measured.n_words,
        measured.max_words,
        coalesce(measured.n_words > measured.max_words, false) as is_truncated,
        measured.n_noise_words_removed,
        measured.input_key
    from measured
    inner join spaces on measured.space = spaces.space
)

select * from final
