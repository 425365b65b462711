{#- Text recipes: what a text space feeds its model, every rule in SQL.

    raw                   "product_name. product_description."
    clean                 raw, then clean_text (macros/clean_text.sql: NFKC,
                          lowercase, HTML entities, punctuation and emoji
                          removed, numbers, units and names like c++ kept)
    clean_no_boilerplate  each field cleaned, then removed as whole words:
                          the boilerplate phrases and patterns of
                          seeds/boilerplate_phrases.csv and the noise tokens
                          of seeds/noise_tokens.csv of scope `anywhere`, from
                          every field; those of scope `description` from
                          every field but product_name (so "Premium
                          Collection" keeps its "premium"); and, with
                          vars.text_strip_store_name, the product's own
                          store_name (which removes a brand from the name
                          when store_name holds brands: see docs/cleaning-dedup-sampling.md)

    The seeds are compiled into regular expressions by
    int_noise_patterns_compiled; models that strip noise cross join its one
    row and pass its columns, and the store-name column, to product_text. -#}

{% macro text_variants() %}
    {{ return(['raw', 'clean', 'clean_no_boilerplate']) }}
{% endmacro %}


{#- The fields a text space reads unless it names its own (text_fields):
    int_product_texts_cleaned holds every recipe on these fields, and
    int_space_inputs reads them there rather than cleaning again. -#}
{% macro default_text_fields() %}
    {{ return(['product_name', 'product_description']) }}
{% endmacro %}


{#- The variant, or a compile error that names the setting and the choices. -#}
{% macro checked_text_variant(variant, setting) %}
    {%- if variant not in text_variants() -%}
        {{ exceptions.raise_compiler_error(
            setting ~ " is '" ~ variant ~ "'; use one of: " ~ (text_variants() | join(', ')) ~ "."
        ) }}
    {%- endif -%}
    {{ return(variant) }}
{% endmacro %}


{#- The SQL expression for one recipe over the given product fields. The
    clean_no_boilerplate recipe removes matches of the `boilerplate_pattern`
    and `noise_pattern` expressions from every field, of
    `description_noise_pattern` from every field but product_name
    (int_noise_patterns_compiled's columns) and, with
    vars.text_strip_store_name, of the `store_name` expression. -#}
{% macro product_text(variant, fields, boilerplate_pattern, noise_pattern, description_noise_pattern, store_name) -%}
    {%- if variant == 'raw' -%}
        {{ raw_product_text(fields) }}
    {%- elif variant == 'clean' -%}
        {{ clean_text(raw_product_text(fields)) }}
    {%- elif variant == 'clean_no_boilerplate' -%}
        {{ strip_noise(cleaned_fields(fields, description_noise_pattern), boilerplate_pattern, noise_pattern, store_name) }}
    {%- else -%}
        {%- do checked_text_variant(variant, 'text_variant') -%}
    {%- endif -%}
{%- endmacro %}


{#- Each field cleaned on its own and joined by spaces (the words of
    clean_text over the raw recipe, in the same order), with matches of the
    description-only noise removed from every field but the product's name. -#}
{% macro cleaned_fields(fields, description_noise_pattern) -%}
    nullif(
        concat_ws(
            ' ',
            {%- for field in fields %}
            {%- if field == 'product_name' %}
            {{ clean_text(product_column(field)) }}{{ "," if not loop.last }}
            {%- else %}
            regexp_replace(
                {{ clean_text(product_column(field)) }},
                coalesce({{ description_noise_pattern }}, '^$'), ' ', 'g'
            ){{ "," if not loop.last }}
            {%- endif %}
            {%- endfor %}
        ),
        ''
    )
{%- endmacro %}


{#- Remove boilerplate phrases, noise tokens and the store's own name from
    cleaned text as whole words: cleaned text is words separated by single
    spaces, so a match must start at the start or after a space
    ((?<![^ ])) and end at the end or before one ((?![^ ])); \m and \M would
    not do, since a word may now end in "+" (c++) or hold a "." (2.0). The
    store name is cleaned like the text and its "." and "+" escaped. '^$'
    stands for "nothing to remove": it matches no non-empty text. -#}
{% macro strip_noise(cleaned, boilerplate_pattern, noise_pattern, store_name) -%}
    nullif(
        trim(
            regexp_replace(
                {%- if var('text_strip_store_name') %}
                regexp_replace(
                {%- endif %}
                    regexp_replace(
                        regexp_replace(
                            {{ cleaned }},
                            coalesce({{ boilerplate_pattern }}, '^$'), ' ', 'g'
                        ),
                        coalesce({{ noise_pattern }}, '^$'), ' ', 'g'
                    ),
                {%- if var('text_strip_store_name') %}
                    coalesce({{ whole_words_pattern(regex_escaped(clean_text(store_name))) }}, '^$'), ' ', 'g'
                ),
                {%- endif %}
                '[[:space:]]+', ' ', 'g'
            )
        ),
        ''
    )
{%- endmacro %}


{#- A regular expression (SQL expression) matched only as whole words of
    cleaned text: at the start or after a space, and at the end or before one. -#}
{% macro whole_words_pattern(alternatives) -%}
    ('(?<![^ ])(' || {{ alternatives }} || ')(?![^ ])')
{%- endmacro %}


{#- Number of whitespace-separated words; null for null text. -#}
{% macro word_count(expression) -%}
    cardinality(regexp_split_to_array(trim({{ expression }}), '[[:space:]]+'))
{%- endmacro %}


{#- The first n words of a text (joined by single spaces), or the text
    unchanged when it has n words or fewer. -#}
{% macro truncate_words(expression, n) -%}
    case
        when {{ word_count(expression) }} > {{ n }}
            then array_to_string((regexp_split_to_array(trim({{ expression }}), '[[:space:]]+'))[1:{{ n }}], ' ')
        else {{ expression }}
    end
{%- endmacro %}


{#- A space's word limit (its max_words, else vars.text_max_words), checked
    against the words its prompt takes. -#}
{% macro space_max_words(space) %}
    {%- set limit = space.get('max_words') or var('text_max_words') -%}
    {%- set prompt_words = (space.get('prompt') or '').split() | length -%}
    {%- if limit is not number or limit < 1 or limit <= prompt_words -%}
        {{ exceptions.raise_compiler_error(
            "Space '" ~ space.name ~ "': max_words is " ~ limit ~ " but its prompt alone takes " ~ prompt_words
            ~ " words. Set max_words (or vars.text_max_words) to a positive number of words larger than the prompt."
        ) }}
    {%- endif -%}
    {{ return(limit) }}
{% endmacro %}
