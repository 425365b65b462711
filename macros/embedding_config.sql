{#- The one configuration, read from vars (dbt_project.yml). embed_udfs.config
    reads the same vars; both refuse the same mistakes. -#}

{% macro embedding_spaces() %}
    {{ return(var('embed_spaces', [])) }}
{% endmacro %}


{% macro embedding_space(name) %}
    {%- for space in embedding_spaces() -%}
        {%- if space.name == name -%}{{ return(space) }}{%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error(
        "Unknown embedding space '" ~ name ~ "'. Configured spaces: "
        ~ (embedding_spaces() | map(attribute='name') | join(', ')) ~ ". Declare it under vars.embed_spaces in dbt_project.yml."
    ) }}
{% endmacro %}


{#- The retrieval pairs, validated: known spaces, right modalities, and the
    alignment guard (same model family unless alignment_override says why). -#}
{% macro embedding_pairs() %}
    {%- set pairs = var('embed_pairs', []) -%}
    {%- for pair in pairs -%}
        {%- set text = embedding_space(pair.text_space) -%}
        {%- set image = embedding_space(pair.image_space) -%}
        {%- if text.modality != 'text' or image.modality != 'image' -%}
            {{ exceptions.raise_compiler_error(
                "Pair '" ~ pair.name ~ "': text_space must be a text space and image_space an image space."
            ) }}
        {%- endif -%}
        {%- if text.dim != image.dim -%}
            {{ exceptions.raise_compiler_error(
                "Pair '" ~ pair.name ~ "': '" ~ text.name ~ "' has dim " ~ text.dim ~ " but '" ~ image.name
                ~ "' has dim " ~ image.dim ~ "; vectors of different dimensions cannot be compared."
            ) }}
        {%- endif -%}
        {%- if text.family != image.family and not pair.get('alignment_override') -%}
            {{ exceptions.raise_compiler_error(
                "Pair '" ~ pair.name ~ "' retrieves across model families: '" ~ text.name ~ "' is '"
                ~ text.family ~ "' and '" ~ image.name ~ "' is '" ~ image.family ~ "'. Vectors from models"
                ~ " that were not trained jointly do not share a geometry, so their cross-modal recall is"
                ~ " meaningless. Pair spaces of one family, or set alignment_override: '<why these spaces"
                ~ " are aligned>' on the pair in vars.embed_pairs."
            ) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(pairs) }}
{% endmacro %}


{#- The spaces that some retrieval pair uses: the eval sample needs them all. -#}
{% macro paired_space_names() %}
    {%- set names = [] -%}
    {%- for pair in embedding_pairs() -%}
        {%- for name in [pair.text_space, pair.image_space] -%}
            {%- if name not in names -%}{%- do names.append(name) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}


{#- Both directions of every pair: query space, gallery space, direction name. -#}
{% macro retrieval_directions() %}
    {%- set directions = [] -%}
    {%- for pair in embedding_pairs() -%}
        {%- do directions.append({'pair': pair.name, 'direction': 'text_to_image',
                                  'query': embedding_space(pair.text_space), 'gallery': embedding_space(pair.image_space)}) -%}
        {%- do directions.append({'pair': pair.name, 'direction': 'image_to_text',
                                  'query': embedding_space(pair.image_space), 'gallery': embedding_space(pair.text_space)}) -%}
    {%- endfor -%}
    {{ return(directions) }}
{% endmacro %}


{% macro max_k() %}
    {{ return(var('eval_k_values') | max) }}
{% endmacro %}


{#- The configured spaces as a relation, for joins and for dim_embedding_spaces. -#}
{% macro embedding_spaces_values() %}
    (
        values
        {%- for space in embedding_spaces() %}
            (
                '{{ space.name }}'::text,
                '{{ space.modality }}'::text,
                '{{ space.backend }}'::text,
                '{{ space.family }}'::text,
                '{{ space.model }}'::text,
                {{ "'" ~ space.pretrained ~ "'" if space.get('pretrained') else 'null' }}::text,
                {{ space.dim }}::integer,
                '{{ space.get('text_variant', 'clean') }}'::text,
                $prompt${{ space.get('prompt', '') }}$prompt$::text
            ){{ "," if not loop.last }}
        {%- endfor %}
    ) as spaces (space, modality, backend, family, model, pretrained, dim, text_variant, prompt)
{% endmacro %}


{#- on-run-start: fail the whole invocation early on a bad configuration
    (unknown space, cross-family pair, ef_search below K), before any model. -#}
{% macro validate_embedding_config() %}
    {%- if execute -%}
        {%- do embedding_pairs() -%}
        {%- do set_ef_search() -%}
    {%- endif -%}
    select 'embedding configuration is valid' as status
{% endmacro %}
