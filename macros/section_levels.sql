{#- collection_section as a path ("Toys & Games | Puzzles | Jigsaw Puzzles"):
    staging normalises it (section_path), int_section_levels maps each leaf
    to its section at every level, and the aggregators group by
    (section_level, section), folding small sections into `other`
    (docs/evaluation-protocol.md#section-levels). -#}

{#- The configured path separator (vars.section_separator), or none when
    sections are one level. -#}
{% macro section_separator() -%}
    {%- set separator = var('section_separator', '|') -%}
    {{ return(separator if separator else none) }}
{%- endmacro %}


{#- What joins the segments of a normalised path: the separator with one
    space either side, e.g. ' | '. -#}
{% macro section_joiner() -%}
    {{ return(' ' ~ section_separator() ~ ' ' if section_separator() else none) }}
{%- endmacro %}


{#- `expression` (a trimmed, non-empty section) as a normalised path: split on
    the separator, each segment trimmed, empty segments dropped, joined by
    section_joiner(); null when no segment is left. Without a separator the
    value is returned as it is. -#}
{% macro section_path(expression) -%}
    {%- if section_separator() -%}
    {#- a value without the separator is one segment: trimmed, no subquery (a
        subquery per row is most of a whole-catalog scan of the products) #}
    case
        when strpos({{ expression }}, {{ sql_string(section_separator()) }}) = 0
            then nullif(trim({{ expression }}), '')
        else nullif(array_to_string(array(
            select trim(parts.part)
            from unnest(string_to_array({{ expression }}, {{ sql_string(section_separator()) }}))
                with ordinality as parts (part, position)
            where trim(parts.part) <> ''
            order by parts.position
        ), {{ sql_string(section_joiner()) }}), '')
    end
    {%- else -%}
    {{ expression }}
    {%- endif -%}
{%- endmacro %}


{#- The first segment of a normalised path (the level-1 section). -#}
{% macro section_head(path) -%}
    {%- if section_separator() -%}
    split_part({{ path }}, {{ sql_string(section_joiner()) }}, 1)
    {%- else -%}
    {{ path }}
    {%- endif -%}
{%- endmacro %}


{#- The segments of a normalised path, as text[]. -#}
{% macro section_segments(path) -%}
    {%- if section_separator() -%}
    string_to_array({{ path }}, {{ sql_string(section_joiner()) }})
    {%- else -%}
    array[{{ path }}]
    {%- endif -%}
{%- endmacro %}


{#- The row that holds a level's sections with fewer queries than
    vars.section_min_queries. -#}
{% macro folded_section_label() -%}
    {{ return('other') }}
{%- endmacro %}


{#- The fewest queries (products) a section needs to be reported on its own. -#}
{% macro section_min_queries() -%}
    {{ return(var('section_min_queries', 10) | int) }}
{%- endmacro %}


{#- `section` folded: the folded label when `n` (the section's queries in
    this aggregation) is below the minimum. `ALL` never reaches this. -#}
{% macro folded_section(section, n) -%}
    case when {{ n }} < {{ section_min_queries() }} then {{ sql_string(folded_section_label()) }} else {{ section }} end
{%- endmacro %}
