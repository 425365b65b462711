{#- Rerankers (vars.rerankers) and the number of stage-1 candidates they
    rescore, as embed_udfs.config validated them. -#}

{% macro rerank_candidates() %}
    {{ return(var('rerank_candidates') | int) }}
{% endmacro %}


{#- The configured rerankers as (reranker, pair, direction) targets. -#}
{% macro rerankers() %}
    {%- set result = [] -%}
    {%- for r in var('rerankers') or [] -%}
        {%- for target in r.get('pairs') or [] -%}
            {%- for direction in r.get('directions') or ['text_to_image', 'image_to_text'] -%}
                {%- do result.append({'reranker': r.name, 'pair': target, 'direction': direction}) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(result) }}
{% endmacro %}


{#- How deep the neighbour lists of one pair and direction go:
    vars.rerank_candidates when a reranker rescores them and that is more
    than max(K), max(K) otherwise, so pairs without a reranker pay for no
    longer list. -#}
{% macro neighbour_depth(pair, direction) %}
    {%- for r in var('rerankers') or [] -%}
        {%- if pair in (r.get('pairs') or []) and direction in (r.get('directions') or ['text_to_image', 'image_to_text']) -%}
            {{ return([max_k(), rerank_candidates()] | max) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(max_k()) }}
{% endmacro %}


{#- The recall cut-offs of the rerank uplift; MRR is truncated at rerank_candidates. -#}
{% macro rerank_k_values() %}
    {{ return([1, 5, 10]) }}
{% endmacro %}
