{#- One row per configured retrieval pair (vars.embed_pairs), with its two
    spaces and the alignment override that lets spaces of different model
    families be paired. Pairs are validated (macro embedding_pairs) before
    they reach this table. -#}
{%- set pairs = embedding_pairs() %}

with

configured as (
    {%- for pair in pairs %}
        {%- set text = embedding_space(pair.text_space) %}
        {%- set image = embedding_space(pair.image_space) %}
        select
            {{ sql_string(pair.name) }}::text as pair,
            {{ sql_string(text.name) }}::text as text_space,
            {{ sql_string(image.name) }}::text as image_space,
            {{ sql_string(text.family) }}::text as text_family,
            {{ sql_string(image.family) }}::text as image_family,
            {{ text.dim | int }}::integer as dim,
            {{ sql_string(pair.get('alignment_override')) }}::text as alignment_override
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not pairs %}
        {{ empty_relation({
            'pair': 'text', 'text_space': 'text', 'image_space': 'text', 'text_family': 'text',
            'image_family': 'text', 'dim': 'integer', 'alignment_override': 'text'
        }) }}
    {%- endif %}
),

final as (
    select * from configured
)

select * from final
