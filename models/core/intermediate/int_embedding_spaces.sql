{#- One row per configured embedding space (vars.embed_spaces): its
    modality, dimension, model, weights, recipe and prompt, built from the
    configuration alone (macro embedding_spaces); every string goes through
    sql_string. The intermediate models that need a space's dimension or
    prompt read it here; dim_embedding_spaces publishes it. -#}
{%- set spaces = embedding_spaces() %}

with

configured as (
    {%- for space in spaces %}
        {%- set is_text = space.modality == 'text' %}
        select
            {{ sql_string(space.name) }}::text as space,
            {{ sql_string(space.modality) }}::text as modality,
            {{ sql_string(space.backend) }}::text as backend,
            {{ sql_string(space.family) }}::text as family,
            {{ sql_string(space.model) }}::text as model,
            {{ sql_string(space.get('pretrained')) }}::text as pretrained,
            {{ space.dim | int }}::integer as dim,
            {{ sql_string(space.get('text_variant', 'clean') if is_text else none) }}::text as text_variant,
            {{ sql_string(space.get('prompt') or '' if is_text else none) }}::text as prompt,
            {%- if is_text %}
                {{ sql_string(space.get('text_fields', default_text_fields()) | join(', ')) }}::text
                    as text_fields,
                {{ space_max_words(space) }}::integer as max_words,
            {%- else %}
                null::text as text_fields,
                null::integer as max_words,
            {%- endif %}
            {{ 'true' if space.get('near_duplicates') else 'false' }} as is_near_duplicate_space
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not spaces %}
        {{ empty_relation({
            'space': 'text', 'modality': 'text', 'backend': 'text', 'family': 'text', 'model': 'text',
            'pretrained': 'text', 'dim': 'integer', 'text_variant': 'text', 'prompt': 'text',
            'text_fields': 'text', 'max_words': 'integer', 'is_near_duplicate_space': 'boolean'
        }) }}
    {%- endif %}
),

final as (
    select * from configured
)

select * from final
