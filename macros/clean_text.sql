{#- The "clean" text recipe, every rule visible: Unicode NFKC, lowercase,
    HTML entities, punctuation and emoji (anything neither a letter, a digit
    nor a space) removed, whitespace collapsed. Empty results become null. -#}
{% macro clean_text(expression) -%}
    nullif(
        trim(
            regexp_replace(
                regexp_replace(
                    regexp_replace(
                        lower(normalize(coalesce({{ expression }}, ''), nfkc)),
                        '&(amp|quot|apos|lt|gt|nbsp|#[0-9]+);', ' ', 'g'
                    ),
                    '[^[:alnum:][:space:]]+', ' ', 'g'
                ),
                '[[:space:]]+', ' ', 'g'
            )
        ),
        ''
    )
{%- endmacro %}


{#- The raw recipe: the listed product fields as "field one. field two.",
    skipping empty fields. -#}
{% macro raw_product_text(fields) -%}
    nullif(
        concat_ws(
            ' ',
            {%- for field in fields %}
            nullif(trim({{ field }}), '') || '.'{{ "," if not loop.last }}
            {%- endfor %}
        ),
        ''
    )
{%- endmacro %}
