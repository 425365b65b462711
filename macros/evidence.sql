{#- The one rule behind every "weaker section" flag and every
    better / worse / no evidence verdict (docs/evaluation-protocol.md):
    a difference with its cluster bootstrap standard error gives a p-value
    (normal, or t-like on the clusters where their number is known); the
    p-values of one family (the sections of one figure) are
    adjusted by Holm's step-down method; a claim needs the adjusted p-value
    below vars.evidence_alpha. -#}

{% macro evidence_alpha() %}
    {%- set alpha = var('evidence_alpha', 0.05) -%}
    {%- if alpha is not number or alpha <= 0 or alpha > 1 -%}
        {{ exceptions.raise_compiler_error(
            "vars.evidence_alpha is " ~ alpha ~ "; use a number in (0, 1], e.g. 0.05."
        ) }}
    {%- endif -%}
    {{ return(alpha) }}
{% endmacro %}


{#- The standard normal CDF at x. -#}
{% macro normal_cdf(x) -%}
    (0.5 * erfc(-({{ x }}) / sqrt(2.0)))
{%- endmacro %}


{#- A t statistic with df degrees of freedom as a standard normal deviate
    (the approximation z = t (1 - 1/(4 df)) / sqrt(1 + t^2 / (2 df))): with
    few clusters a normal p-value on a bootstrap standard error claims too
    much, so the test behaves like a t-test on the clusters. -#}
{% macro t_as_z(t, df) -%}
    (({{ t }}) * (1 - 1 / (4.0 * ({{ df }}))) / sqrt(1 + ({{ t }}) ^ 2 / (2.0 * ({{ df }}))))
{%- endmacro %}


{#- One-sided p-value against "the difference is >= 0" (small when the
    difference is clearly negative). With `clusters` (the clusters behind
    the figure, G) the standard error is scaled by sqrt(G / (G - 1)) and the
    statistic read on G - 1 degrees of freedom; fewer than 2 clusters is no
    evidence. A zero standard error with a negative difference is certain;
    with none, no evidence. -#}
{% macro p_below_zero(difference, standard_error, clusters=none) -%}
    case
        when ({{ standard_error }}) is null then null
        {%- if clusters %}
        when ({{ clusters }}) < 2 then 1.0
        when ({{ standard_error }}) > 0 then {{ normal_cdf(t_as_z(
            '(' ~ difference ~ ') / ((' ~ standard_error ~ ') * sqrt((' ~ clusters ~ ')::float8 / ((' ~ clusters ~ ') - 1)))',
            '(' ~ clusters ~ ') - 1'
        )) }}
        {%- else %}
        when ({{ standard_error }}) > 0 then {{ normal_cdf('(' ~ difference ~ ') / (' ~ standard_error ~ ')') }}
        {%- endif %}
        when ({{ difference }}) < 0 then 0.0
        when ({{ difference }}) is not null then 1.0
    end
{%- endmacro %}


{#- Two-sided p-value against "the difference is 0" (`clusters` as in
    p_below_zero). -#}
{% macro p_two_sided(difference, standard_error, clusters=none) -%}
    case
        when ({{ standard_error }}) is null then case when ({{ difference }}) = 0 then 1.0 end
        {%- if clusters %}
        when ({{ clusters }}) < 2 then 1.0
        when ({{ standard_error }}) > 0 then 2 * {{ normal_cdf('-abs(' ~ t_as_z(
            '(' ~ difference ~ ') / ((' ~ standard_error ~ ') * sqrt((' ~ clusters ~ ')::float8 / ((' ~ clusters ~ ') - 1)))',
            '(' ~ clusters ~ ') - 1'
        ) ~ ')') }}
        {%- else %}
        when ({{ standard_error }}) > 0
            then 2 * {{ normal_cdf('-abs(' ~ difference ~ ') / (' ~ standard_error ~ ')') }}
        {%- endif %}
        when ({{ difference }}) <> 0 then 0.0
        when ({{ difference }}) is not null then 1.0
    end
{%- endmacro %}


{#- Holm, step 1: p times (m - i + 1), where i is the p-value's rank in its
    family (`partition`, a list of columns) and m the family's size. -#}
{% macro holm_scaled(p, partition, tiebreak) -%}
    (
        count({{ p }}) over (partition by {{ partition | join(', ') }})
        - row_number() over (partition by {{ partition | join(', ') }} order by {{ p }} asc nulls last, {{ tiebreak }})
        + 1
    ) * ({{ p }})
{%- endmacro %}


{#- Holm, step 2: the running maximum of the scaled p-values, capped at 1:
    the adjusted p-value, monotone in p. -#}
{% macro holm_adjusted(scaled, p, partition, tiebreak) -%}
    case when ({{ p }}) is not null then least(1.0, max({{ scaled }}) over (
        partition by {{ partition | join(', ') }}
        order by {{ p }} asc nulls last, {{ tiebreak }}
        rows between unbounded preceding and current row
    )) end
{%- endmacro %}


{#- A verdict from an adjusted two-sided p-value and the difference's sign. -#}
{% macro evidence_verdict(p_adjusted, difference, higher_is_better='true') -%}
    case
        when ({{ p_adjusted }}) is null then null
        when ({{ p_adjusted }}) >= {{ evidence_alpha() }} then 'no evidence'
        when (({{ difference }}) > 0) = ({{ higher_is_better }}) then 'better'
        else 'worse'
    end
{%- endmacro %}


{#- Sections with fewer queries or products than this are marked small. -#}
{% macro small_section_n() %}
    {%- set n = var('small_section_n', 30) -%}
    {%- if n is not number or n < 1 -%}
        {{ exceptions.raise_compiler_error(
            "vars.small_section_n is " ~ n ~ "; use a positive integer, e.g. 30."
        ) }}
    {%- endif -%}
    {{ return(n | int) }}
{% endmacro %}
