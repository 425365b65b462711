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
    spaces cleaned here; depends_on keeps them a parent whatever the spaces. -#}
{%- set noise = ['patterns.boilerplate_pattern', 'patterns.noise_pattern', 'patterns.description_noise_pattern', 'products.store_name'] %}
{%- set cleaning = namespace(needed=false) %}
{%- for space in embedding_spaces() if space.modality == 'text' %}
    {%- set cleaning.needed = cleaning.needed or space.get('text_fields', default_text_fields()) != default_text_fields() %}
{%- endfor %}
-- depends_on: {{ ref('int_noise_patterns_compiled') }}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
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
        select
            {{ sql_string(space.name) }}::text as space,
            {{ sql_string(space.modality) }}::text as modality,
            products.product_id,
            products.collection_section,
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
        measured.n_noise_words_removed
    from measured
    inner join spaces on measured.space = spaces.space
)

select * from final
