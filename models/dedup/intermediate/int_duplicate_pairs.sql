{#- The links between duplicate products, one row per (product_id,
    duplicate_id, link_type) with product_id < duplicate_id:
      exact_text      the same text under vars.dedup_text_variant
      exact_image     the same image bytes: equal input_hash in one image space
                      (the hash covers the recipe and the bytes)
      near_duplicate  cosine distance below vars.near_duplicate_max_distance in
                      the space marked near_duplicates: true, among each
                      product's top vars.near_duplicate_k HNSW neighbours
                      (int_near_duplicate_neighbours)
    Exact duplicates are linked to the first product (by product_id) that
    shares the text or image, so a set of n copies gives n - 1 links, not n^2.
    With vars.enable_dedup false there are no links: every product is its own group. -#}
{%- set text_variant = checked_text_variant(var('dedup_text_variant', 'clean_no_boilerplate'), 'vars.dedup_text_variant') %}

with

products as (
    select * from {{ ref('stg_catalog__products') }}
),

texts as (
    select * from {{ ref('int_product_texts_cleaned') }}
),

vectors as (
    select * from {{ ref('stg_embeddings__vectors') }}
),

{% if family_enabled('dedup') -%}
    near_neighbours as (
        select * from {{ ref('int_near_duplicate_neighbours') }}
    ),

{% endif -%}
spaces as (
    select * from {{ ref('int_embedding_spaces') }}
),

image_spaces as (
    select * from spaces
    where modality = 'image'
),

same_text as (
    select
        product_id,
        min(product_id) over (partition by text_{{ text_variant }}) as first_id
    from texts
    where text_{{ text_variant }} is not null
),

exact_text as (
    select
        first_id as product_id,
        product_id as duplicate_id,
        'exact_text'::text as link_type,
        null::text as space,
        null::float8 as distance
    from same_text
    where product_id <> first_id
),

same_image as (
    select
        vectors.space,
        vectors.product_id,
        min(vectors.product_id) over (partition by vectors.space, vectors.input_hash) as first_id
    from vectors
    inner join image_spaces on vectors.space = image_spaces.space
    inner join products on vectors.product_id = products.product_id
    where vectors.input_hash is not null
),

exact_image as (
    select
        first_id as product_id,
        product_id as duplicate_id,
        'exact_image'::text as link_type,
        space,
        null::float8 as distance
    from same_image
    where product_id <> first_id
),

{% if family_enabled('dedup') -%}
    near_duplicate as (
        select
            product_id,
            neighbour_id as duplicate_id,
            'near_duplicate'::text as link_type,
            space,
            distance
        from near_neighbours
    ),

{% endif -%}
final as (
    {%- if family_enabled('dedup') %}
        select * from exact_text
        union all
        select * from exact_image
        union all
        select * from near_duplicate
    {%- else %}
        -- vars.enable_dedup is false: no duplicates are looked for
        select * from exact_text
        where false
    {%- endif %}
)

select * from final
