{#- Rerankers (vars.rerankers), validated the same way as embed_udfs.rerank.config:
    a known pair, directions of both kinds, a backend that reads both the text
    and the image of a cross-modal pair, and rerank_candidates within what the
    search returns. embed_udfs.rerank.config refuses the same mistakes. -#}

{#- What each backend reads; a reranker must read both sides of a pair. -#}
{% macro reranker_backend_modalities() %}
    {{ return({
        'open_clip': ['text', 'image'],
        'blip_itm': ['text', 'image'],
        'sentence_transformers': ['text'],
    }) }}
{% endmacro %}


{% macro rerank_candidates() %}
    {%- set n = var('rerank_candidates', 100) -%}
    {%- if n is not number or n < 1 -%}
        {{ exceptions.raise_compiler_error(
            "vars.rerank_candidates is " ~ n ~ "; it must be a positive integer (stage-1 candidates per query)."
        ) }}
    {%- endif -%}
    {%- if n > var('hnsw_ef_search') -%}
        {{ exceptions.raise_compiler_error(
            "vars.rerank_candidates (" ~ n ~ ") is above vars.hnsw_ef_search (" ~ var('hnsw_ef_search')
            ~ "): an HNSW scan returns at most ef_search rows, so the search cannot return " ~ n
            ~ " candidates per query. Lower rerank_candidates or raise hnsw_ef_search."
        ) }}
    {%- endif -%}
    {{ return(n | int) }}
{% endmacro %}


{#- The configured rerankers with their (pair, direction) targets resolved. -#}
{% macro rerankers() %}
    {%- set pairs = {} -%}
    {%- for pair in embedding_pairs() -%}{%- do pairs.update({pair.name: pair}) -%}{%- endfor -%}
    {%- set modalities = reranker_backend_modalities() -%}
    {%- set result = [] -%}
    {%- set names = [] -%}
    {%- for r in var('rerankers', []) or [] -%}
        {%- set name = r.get('name') -%}
        {%- if not name or not modules.re.match('^[a-z][a-z0-9_]*$', name) -%}
            {{ exceptions.raise_compiler_error(
                "A reranker in vars.rerankers has name '" ~ name ~ "'; names must match ^[a-z][a-z0-9_]*$."
            ) }}
        {%- endif -%}
        {%- if name in names -%}
            {{ exceptions.raise_compiler_error("Reranker names must be unique; repeated: '" ~ name ~ "'.") }}
        {%- endif -%}
        {%- do names.append(name) -%}
        {%- set backend = r.get('backend') -%}
        {%- if backend not in modalities -%}
            {{ exceptions.raise_compiler_error(
                "Reranker '" ~ name ~ "' has backend '" ~ backend ~ "'; use open_clip or blip_itm."
            ) }}
        {%- endif -%}
        {%- set targets = r.get('pairs') or [] -%}
        {%- if targets is string or not targets -%}
            {{ exceptions.raise_compiler_error(
                "Reranker '" ~ name ~ "' needs pairs: a list of the vars.embed_pairs it rescores."
            ) }}
        {%- endif -%}
        {%- set directions = r.get('directions') or ['text_to_image', 'image_to_text'] -%}
        {%- for direction in directions -%}
            {%- if direction not in ('text_to_image', 'image_to_text') -%}
                {{ exceptions.raise_compiler_error(
                    "Reranker '" ~ name ~ "' has direction '" ~ direction ~ "'; use text_to_image or image_to_text."
                ) }}
            {%- endif -%}
        {%- endfor -%}
        {%- for target in targets -%}
            {%- if target not in pairs -%}
                {{ exceptions.raise_compiler_error(
                    "Reranker '" ~ name ~ "' rescores pair '" ~ target ~ "', which does not exist; configured pairs: "
                    ~ (pairs.keys() | list | sort | join(', ')) ~ ". Fix its pairs or add the pair to vars.embed_pairs."
                ) }}
            {%- endif -%}
            {%- if 'text' not in modalities[backend] or 'image' not in modalities[backend] -%}
                {{ exceptions.raise_compiler_error(
                    "Reranker '" ~ name ~ "' (backend " ~ backend ~ ") reads " ~ (modalities[backend] | join(' and '))
                    ~ " only, so it cannot score pair '" ~ target ~ "', whose queries and candidates are texts"
                    ~ " and images. Use open_clip or blip_itm."
                ) }}
            {%- endif -%}
            {%- for direction in directions -%}
                {%- do result.append({'reranker': name, 'pair': target, 'direction': direction}) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(result) }}
{% endmacro %}


{#- How deep the neighbour lists of one pair and direction go:
    vars.rerank_candidates when a reranker rescores them and that is more
    than max(K), max(K) otherwise, so pairs without a reranker pay for no
    longer list. Rerankers are validated on run start and by
    int_rerank_candidates; this reads only the var, so that unit tests which
    override the pairs still compile. -#}
{% macro neighbour_depth(pair, direction) %}
    {%- for r in var('rerankers', []) or [] -%}
        {%- if pair in (r.get('pairs') or []) and direction in (r.get('directions') or ['text_to_image', 'image_to_text']) -%}
            {{ return([max_k(), rerank_candidates()] | max) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(max_k()) }}
{% endmacro %}


{#- on-run-start: refuse a bad reranker configuration before any model runs. -#}
{% macro validate_rerankers() %}
    {%- if execute -%}
        {%- do rerankers() -%}
        {%- do rerank_candidates() -%}
    {%- endif -%}
    select 'reranker configuration is valid' as status
{% endmacro %}


{#- The recall cut-offs of the rerank uplift; MRR is truncated at rerank_candidates. -#}
{% macro rerank_k_values() %}
    {{ return([1, 5, 10]) }}
{% endmacro %}
