{#- What each space's model is fed, one row per (space, product): the text
    recipe (fields, variant, prompt, truncated to the space's max_words) or
    the image URI. embed-udfs backfill reads this table, so every text rule
    lives here in SQL (recipes: macros/text_recipes.sql). -#}
{%- set noise = ['patterns.boilerplate_pattern', 'patterns.noise_pattern', 'patterns.description_noise_pattern', 'products.store_name'] %}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

patterns as (
    select * from {{ ref('int_noise_patterns_compiled') }}
),

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
                {%- set fields = space.get('text_fields', ['product_name', 'product_description']) %}
                {%- set variant = checked_text_variant(space.get('text_variant', 'clean'), "Space '" ~ space.name ~ "': text_variant") %}
                {{ product_text(variant, fields, *noise) }} as body,
                {{ product_text('clean', fields, *noise) if variant == 'clean_no_boilerplate' else 'null::text' }}
                    as clean_body,
                {{ sql_string(variant) }}::text as text_variant,
                {{ space_max_words(space) }}::integer as max_words,
                {{ (space.get('prompt') or '').split() | length }}::integer as prompt_words
            {%- endif %}
        from products
        cross join patterns
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
