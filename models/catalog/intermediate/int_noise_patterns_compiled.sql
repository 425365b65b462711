{#- The two seeds compiled into the regular expressions that the
    clean_no_boilerplate recipe removes (see macros/text_recipes.sql): each
    phrase and token cleaned like product text and escaped (a pattern row is
    used as written), longest first, as whole words of cleaned text. Noise
    tokens of scope `description` go into their own pattern, applied to
    every field but the product's name. Query this row to see exactly what
    is removed. -#}

with

boilerplate_phrases as (
    select * from {{ ref('boilerplate_phrases') }}
),

noise_tokens as (
    select * from {{ ref('noise_tokens') }}
),

-- a phrase matches its cleaned words literally; a pattern is a regex over cleaned text
cleaned_phrases as (
    select distinct
        case
            when match = 'pattern' then nullif(trim(phrase), '')
            else {{ regex_escaped(clean_text('phrase')) }}
        end as phrase
    from boilerplate_phrases
),

cleaned_tokens as (
    select distinct
        {{ regex_escaped(clean_text('token')) }} as token,
        coalesce(scope, 'anywhere') as scope
    from noise_tokens
),

boilerplate as (
    select
        {{ whole_words_pattern("string_agg(phrase, '|' order by length(phrase) desc, phrase asc)") }}
            as boilerplate_pattern,
        count(*) as n_boilerplate_phrases
    from cleaned_phrases
    where phrase is not null
),

noise as (
    select
        {{ whole_words_pattern("string_agg(token, '|' order by length(token) desc, token asc)") }}
            as noise_pattern,
        count(*) as n_noise_tokens
    from cleaned_tokens
    where token is not null and scope = 'anywhere'
),

description_noise as (
    select
        {{ whole_words_pattern("string_agg(token, '|' order by length(token) desc, token asc)") }}
            as description_noise_pattern,
        count(*) as n_description_noise_tokens
    from cleaned_tokens
    where token is not null and scope = 'description'
),

final as (
    select
        boilerplate.boilerplate_pattern,
        noise.noise_pattern,
        description_noise.description_noise_pattern,
        boilerplate.n_boilerplate_phrases,
        noise.n_noise_tokens,
        description_noise.n_description_noise_tokens
    from boilerplate
    cross join noise
    cross join description_noise
)

select * from final
