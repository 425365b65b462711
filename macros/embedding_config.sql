{#- The one configuration, read from vars (dbt_project.yml). Its schema and
    validator is embed_udfs.config; dbt reads the validated values
    (macros/config_guard.sql checks that they are the ones validated). -#}

{% macro embedding_spaces() %}
    {%- set spaces = var('embed_spaces') -%}
    {#- Installed as a package, the demo's spaces (this project's defaults, whose
        models are the demo's checkpoints) are never measured in a user's database. -#}
    {%- if execute and not is_root_project() -%}
        {%- for space in spaces if (space.get('pretrained') or '') is string
            and (space.get('pretrained') or '').startswith('.embed_metrics/demo_models/') -%}
            {{ exceptions.raise_compiler_error(
                "vars.embed_spaces still holds the embed-metrics demo's spaces ('" ~ space.name
                ~ "'). Set embed_spaces and embed_pairs in your dbt_project.yml to the spaces in"
                ~ " your vectors relation (docs/package.md in the embed-metrics repository)."
            ) }}
        {%- endfor -%}
    {%- endif -%}
    {{ return(spaces) }}
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


{% macro embedding_pairs() %}
    {{ return(var('embed_pairs')) }}
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
