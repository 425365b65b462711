{#- One row per (space, product) of the vectors relation, read as pgvector
    `vector` whatever it is stored as (vector, halfvec or real[]). Only the
    contract's columns are read, under the names vars.vectors_columns gives
    them. With vars.vectors_columns.space null the relation has one column
    per space instead (each space's vector_column, by default its name), and
    a product without a vector in that column has no row in that space. -#}
{%- set source_relation = source('embeddings', 'vectors') %}

with

vectors as (
    {%- if vectors_have_space_column() %}
        select
            {{ input_column('vectors_columns', 'space') }}::text as space,
            {{ input_column('vectors_columns', 'product_id') }} as product_id,
            {{ input_column('vectors_columns', 'embedding') }}::vector as embedding,
            {{ input_column('vectors_columns', 'input_hash') }}::text as input_hash,
            {{ input_column('vectors_columns', 'model_ref') }}::text as model_ref,
            {{ input_column('vectors_columns', 'embedded_at') }}::timestamptz as embedded_at
        from {{ source_relation }}
    {%- else %}
    {%- for space in embedding_spaces() %}
    select
        {{ sql_string(space.name) }}::text as space,
        {{ input_column('vectors_columns', 'product_id') }} as product_id,
        {{ space_vector_column(space) }}::vector as embedding,
        {{ input_column('vectors_columns', 'input_hash') }}::text as input_hash,
        {{ input_column('vectors_columns', 'model_ref') }}::text as model_ref,
        {{ input_column('vectors_columns', 'embedded_at') }}::timestamptz as embedded_at
    from {{ source_relation }}
    where {{ space_vector_column(space) }} is not null
    {{ "union all" if not loop.last }}
    {%- endfor %}
{%- endif %}
),

final as (
    select
        space,
        product_id::text as product_id,
        embedding,
        vector_dims(embedding) as dims,
        vector_norm(embedding) as norm,
        input_hash,
        model_ref,
        embedded_at
    from vectors
)

select * from final
