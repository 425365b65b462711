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
            nullif(trim({{ product_column(field) }}), '') || '.'{{ "," if not loop.last }}
            {%- endfor %}
        ),
        ''
    )
{%- endmacro %}


{#- A product column named in the configuration (a space's text_fields), as
    a quoted identifier. Names are checked first: a configured string is
    never pasted into SQL as it stands. -#}
{% macro product_column(name) -%}
    {%- if name is not string or not modules.re.match('^[a-z_][a-z0-9_]*$', name) -%}
        {{ exceptions.raise_compiler_error(
            "text_fields entry " ~ (name | string | tojson) ~ " is not a column name: use lowercase"
            ~ " letters, digits and underscores (a column of the products relation, e.g. product_name)."
        ) }}
    {%- endif -%}
    {{ adapter.quote(name) }}
{%- endmacro %}
