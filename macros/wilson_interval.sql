{#- Wilson score interval for a proportion hits/n (z = 1.96, the 97.5% normal quantile, for 95%).
    Unlike the normal approximation it stays inside [0, 1] and behaves at
    p = 0 or 1 and small n. Null when n = 0. -#}
{% macro wilson_bound(hits, n, side, z=1.959963984540054) -%}
    case when ({{ n }}) > 0 then
        (
            ({{ hits }})::float8 / ({{ n }})
            + {{ z }} ^ 2 / (2.0 * ({{ n }}))
            {{ '-' if side == 'low' else '+' }} {{ z }} * sqrt(
                ({{ hits }})::float8 / ({{ n }}) * (1 - ({{ hits }})::float8 / ({{ n }})) / ({{ n }})
                + {{ z }} ^ 2 / (4.0 * ({{ n }}) ^ 2)
            )
        ) / (1 + {{ z }} ^ 2 / ({{ n }}))
    end
{%- endmacro %}


{#- Normal-approximation interval for a mean (MRR, mean cosine). -#}
{% macro mean_ci_bound(mean, stddev, n, side, z=1.959963984540054) -%}
    case when ({{ n }}) > 1 then
        ({{ mean }}) {{ '-' if side == 'low' else '+' }} {{ z }} * ({{ stddev }}) / sqrt(({{ n }})::float8)
    end
{%- endmacro %}
