{#- The "clean" text recipe, every rule visible and applied in this order:

    before NFKC   a digit glued to a vulgar fraction gets a space
                  ("10½" -> "10 ½"; NFKC would make it "101⁄2")
    NFKC, lower   compatibility forms and case ("¾" -> "3⁄4", "℃" -> "°c",
                  full-width "２.０" -> "2.0"), under pg_c_utf8 (see below)
    then the rules of clean_text_rules(), one regexp_replace each: fraction
    slash, inch marks and degrees after a number, a minus sign, thousands
    separators, apostrophes inside words, HTML entities; then every
    punctuation mark, symbol (emoji included) and control character becomes
    a space, except the marks that carry a product's meaning: a decimal
    point or fraction slash between digits ("2.0", "8.625", "3/4"), a sign
    before a number ("-20"), a percent sign after one ("10%"), the degree
    sign of "-20 °c" and the "+" or "#" that ends a word ("c++", "c#").
    Whitespace is collapsed and an empty result becomes null.

    Character classes ([[:alpha:]], [[:punct:]]) and lower() depend on the
    collation. Under the "C" collation they know ASCII only, so Cyrillic,
    Greek or accented letters would be lost; every rule here therefore runs
    under PostgreSQL's built-in pg_c_utf8 collation (PostgreSQL 17 or later,
    UTF8 database), whatever the database's own locale. -#}
{% macro clean_text(expression) -%}
    {%- set ns = namespace(text=None) -%}
    {%- set ns.text -%}
        lower(normalize(
            regexp_replace(coalesce({{ expression }}, ''), '([0-9])([¼½¾⅐-⅞↉])', '\1 \2', 'g'),
            nfkc
        ) collate pg_c_utf8)
    {%- endset -%}
    {%- for rule in clean_text_rules() -%}
        {%- set ns.text = 'regexp_replace(' ~ ns.text ~ ', ' ~ sql_string(rule.pattern) ~ ', '
            ~ sql_string(rule.replacement) ~ ", 'g')" -%}
    {%- endfor -%}
    nullif(trim({{ ns.text }}), '')
{%- endmacro %}


{#- The rules clean_text applies after NFKC and lowercasing, in order: a
    pattern (a PostgreSQL ARE; lookbehind and lookahead keep the context out
    of the match) and its replacement. A rule's `why` is what it is for. -#}
{% macro clean_text_rules() %}
    {%- set apostrophes = "['’ʼ]|&apos;|&#39;" -%}
    {%- set html_entities = 'amp|quot|apos|lt|gt|nbsp|ndash|mdash|hellip|laquo|raquo|reg|trade|copy' -%}
    {%- set inch_marks = '"|&quot;|&#34;|”|″|′′|' ~ "''" ~ '|inches|inch' -%}
    {{ return([
        {'why': 'NFKC writes ¾ as 3⁄4 (fraction slash): make it 3/4',
         'pattern': '⁄', 'replacement': '/'},
        {'why': 'an inch mark after a number, in any spelling, is " inch": 8.625" -> 8.625 inch',
         'pattern': '([0-9])[[:space:]]*(' ~ inch_marks ~ ')(?![[:alnum:]])', 'replacement': '\\1 inch'},
        {'why': 'a degree sign after a number is " °", and " °c" or " °f" for a temperature: -20°C -> -20 °c',
         'pattern': '([0-9])[[:space:]]*°([[:space:]]*([cf])(?![[:alnum:]]))?', 'replacement': '\\1 °\\3'},
        {'why': 'a minus sign (U+2212) before a number is a hyphen-minus',
         'pattern': '(?<![[:alnum:]])−(?=[0-9])', 'replacement': '-'},
        {'why': 'a thousands separator is dropped: 1,000 -> 1000 (2,5 and 36,38 are not thousands)',
         'pattern': '(?<=[0-9]),(?=[0-9]{3}(?![0-9]))', 'replacement': ''},
        {'why': "an apostrophe inside a word joins it: rubik's -> rubiks, l'oréal -> loréal",
         'pattern': '(?<=[[:alpha:]])(' ~ apostrophes ~ ')(?=[[:alpha:]])', 'replacement': ''},
        {'why': 'HTML entities left (&amp;, &nbsp;, &quot; as a quote, numeric ones) are spaces;'
                ' only named entities that listings use, so "salt&pepper;" keeps its pepper',
         'pattern': '&(' ~ html_entities ~ '|#[0-9]+|#x[0-9a-f]+);', 'replacement': ' '},
        {'why': 'punctuation, symbols, emoji and control characters become spaces, except - . / % ° + #',
         'pattern': '((?![-./%°+#])[[:punct:][:cntrl:]\u200d\ufe0e\ufe0f\u20e3])+', 'replacement': ' '},
        {'why': 'and those stay only where they carry meaning: a decimal point or slash between digits'
                ' (2.0, 3/4), a hyphen as the sign of a number (-20; not 30-day, 1-2), a percent sign'
                ' after a number (10%), a degree sign in "<number> °", a + or # that ends a word'
                ' (c++, c#, a+; not #1, c+x or a lone +)',
         'pattern': '(?<![0-9])[./]|[./](?![0-9])|(?<=[[:alnum:]])-|-(?![0-9])|(?<![0-9])%|(?<![0-9] )°'
                    '|(?<![[:alpha:]+])[+]+|[+]+(?=[[:alnum:]])|(?<![[:alpha:]])#+|#+(?=[[:alnum:]])',
         'replacement': ' '},
        {'why': 'whitespace collapsed to single spaces',
         'pattern': '[[:space:]]+', 'replacement': ' '},
    ]) }}
{% endmacro %}


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


{#- A cleaned text as a regular expression that matches it literally: the
    marks cleaning keeps that are special in a regex ("." of 2.0, "+" of
    c++) are escaped. -#}
{% macro regex_escaped(cleaned) -%}
    regexp_replace({{ cleaned }}, '([.+*?^$(){}|\[\]\\])', '\\\1', 'g')
{%- endmacro %}

