{#- The two seeds compiled into the regular expressions that the
    clean_no_boilerplate recipe removes (see macros/text_recipes.sql): each
    phrase and token cleaned like product text, longest first, as whole words.
    Query this row to see exactly what is removed. -#}

with

boilerplate_phrases as (
    select * from {{ ref('boilerplate_phrases') }}
),

noise_tokens as (
    select * from {{ ref('noise_tokens') }}
),

cleaned_phrases as (
    select distinct {{ clean_text('phrase') }} as phrase
    from boilerplate_phrases
),

cleaned_tokens as (
    select distinct {{ clean_text('token') }} as token
    from noise_tokens
),

boilerplate as (
    select
        '\m(' || string_agg(phrase, '|' order by length(phrase) desc, phrase asc) || ')\M' as boilerplate_pattern,
        count(*) as n_boilerplate_phrases
    from cleaned_phrases
    where phrase is not null
),

noise as (
    select
        '\m(' || string_agg(token, '|' order by length(token) desc, token asc) || ')\M' as noise_pattern,
        count(*) as n_noise_tokens
    from cleaned_tokens
    where token is not null
),

final as (
    select
        boilerplate.boilerplate_pattern,
        noise.noise_pattern,
        boilerplate.n_boilerplate_phrases,
        noise.n_noise_tokens
    from boilerplate
    cross join noise
)

select * from final
