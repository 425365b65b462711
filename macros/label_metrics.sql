{#- Label structure: which spaces are scored against collection_section, and
    the deterministic bootstrap behind every label-metric interval. -#}

{#- The text spaces: every label metric is computed in each of them. -#}
{% macro label_space_names() %}
    {{ return(embedding_spaces() | selectattr('modality', 'equalto', 'text') | map(attribute='name') | list) }}
{% endmacro %}


{#- The KMeans runs `embed-udfs cluster` makes per space and PCA size. -#}
{% macro label_kmeans_seeds() %}
    {%- set seeds = var('label_kmeans_seeds') -%}
    {%- if seeds is string or seeds | length == 0 -%}
        {{ exceptions.raise_compiler_error(
            "vars.label_kmeans_seeds must be a list of distinct non-negative integers, e.g. [0, 1, 2, 3, 4]."
        ) }}
    {%- endif -%}
    {{ return(seeds) }}
{% endmacro %}


{#- Bootstrap replicates B: each product's weights are a vector(B), so B is
    bounded by pgvector's 16,000 dimensions. -#}
{% macro bootstrap_replicates() %}
    {%- set b = var('bootstrap_replicates') -%}
    {%- if b is not number or b < 2 or b > 16000 -%}
        {{ exceptions.raise_compiler_error(
            "vars.bootstrap_replicates is " ~ b ~ "; use an integer from 2 to 16000"
            ~ " (200 or more for stable intervals)."
        ) }}
    {%- endif -%}
    {{ return(b | int) }}
{% endmacro %}


{#- A uniform number in [0, 1) from the first 52 bits of md5(key): the same
    key gives the same number on every server. -#}
{% macro hash_uniform(key) -%}
    (('x' || substr(md5({{ key }}), 1, 13))::bit(52)::bigint::float8 / 4503599627370496.0)
{%- endmacro %}


{#- A Poisson(1) draw by inverting its CDF at u (in [0, 1)); the thresholds
    are sum_{j <= k} e^-1 / j!. Draws above 8 (probability 1e-6) count as 9. -#}
{% macro poisson_one(u) -%}
    {%- set cdf = [
        0.36787944117144233, 0.7357588823428847, 0.9196986029286058,
        0.9810118431238462, 0.9963401531726563, 0.9994058151824183,
        0.9999167588507119, 0.9999898508297324, 0.9999989952803666
    ] -%}
    case
        {%- for threshold in cdf %}
        when {{ u }} < {{ threshold }} then {{ loop.index0 }}
        {%- endfor %}
        else {{ cdf | length }}
    end
{%- endmacro %}


{#- The Poisson bootstrap weight of `product` (a product_id expression) in
    resample `replicate` (1..B): its multiplicity, a Poisson(1) draw (the
    Poisson bootstrap approximates resampling N products with replacement).
    Each draw comes from md5(bootstrap_seed, product_id, replicate), so it is
    deterministic, a product keeps its weights when other products join or
    leave, and a product has the same weights wherever it is drawn
    (int_bootstrap_weights, int_rerank_bootstrap_weights): every space and
    metric, and stage 1 and 2 of a reranker, are compared paired. -#}
{% macro poisson_bootstrap_weight(product, replicate) -%}
    {{ poisson_one(hash_uniform(
        "'" ~ var('bootstrap_seed') ~ ":' || " ~ product ~ " || ':' || " ~ replicate
    )) }}
{%- endmacro %}


{#- A 95% bootstrap standard-error interval: the estimate +/- z times the
    standard deviation of its bootstrap replicates (Efron's normal interval;
    200 replicates estimate a standard error well). Unlike percentiles of the
    replicates it is not moved by the upward bias that resampling gives
    statistics such as NMI (a resample duplicates products). -#}
{% macro bootstrap_bound(estimate, replicate_stddev, side, z=1.959963984540054) -%}
    (({{ estimate }}) {{ '-' if side == 'low' else '+' }} {{ z }} * ({{ replicate_stddev }}))
{%- endmacro %}
