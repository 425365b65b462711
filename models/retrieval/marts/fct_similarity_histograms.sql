{{ config(enabled=family_enabled('gaps')) }}
{#- Histograms of the cosine similarity of positive pairs (a product's text
    and its own image) and of negative pairs (a product's text and another
    sampled product's image), per retrieval pair, on fixed bin edges over
    [-1, 1] so that runs and pairs share one axis. By default the negatives
    are exact: every (text, other image) pair of the eval sample, N * (N - 1)
    of them. With vars.similarity_histogram_negatives set to an integer S,
    each text meets S images at fixed, evenly spread offsets in product_id
    order instead (a deterministic sample of N * S negatives). -#}

{%- set n_bins = var('similarity_histogram_bins', 40) | int -%}
{%- set negatives = var('similarity_histogram_negatives', 'all') -%}

with

vectors as (
    select * from {{ ref('int_eval_vectors') }}
),

{%- for pair in embedding_pairs() %}

    products_{{ loop.index }} as (
        select
            {{ sql_string(pair.name) }}::text as pair,
            texts.product_id,
            texts.embedding as text_embedding,
            images.embedding as image_embedding,
            row_number() over (order by texts.product_id) - 1 as position,
            count(*) over () as n_products
        from vectors as texts
        inner join vectors as images
            on texts.product_id = images.product_id
                and images.space = {{ sql_string(pair.image_space) }}
        where texts.space = {{ sql_string(pair.text_space) }}
    ),

    {%- if negatives == 'all' %}

        {#- vectors are stored L2-normalised, so the inner product is the cosine -#}
        similarities_{{ loop.index }} as (
            select
                texts.pair,
                texts.product_id = images.product_id as is_positive,
                -(texts.text_embedding <#> images.image_embedding) as cosine
            from products_{{ loop.index }} as texts
            cross join products_{{ loop.index }} as images
        ),

    {%- else %}

        offsets_{{ loop.index }} as (
            select distinct
                1 + floor(step * (products.n_products - 1)::float8 / {{ negatives | int }})::bigint as shift
            from (select max(n_products) as n_products from products_{{ loop.index }}) as products
            cross join generate_series(0, {{ negatives | int }} - 1) as step
            where products.n_products > 1
        ),

        similarities_{{ loop.index }} as (
            select
                texts.pair,
                true as is_positive,
                -(texts.text_embedding <#> texts.image_embedding) as cosine
            from products_{{ loop.index }} as texts

            union all

            select
                texts.pair,
                false as is_positive,
                -(texts.text_embedding <#> images.image_embedding) as cosine
            from products_{{ loop.index }} as texts
            cross join offsets_{{ loop.index }} as offsets
            inner join products_{{ loop.index }} as images
                on images.position = (texts.position + offsets.shift) % texts.n_products
        ),

    {%- endif %}
{%- endfor %}

similarities as (
    {%- for pair in embedding_pairs() %}
        select * from similarities_{{ loop.index }}
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not embedding_pairs() %}
        select null::text as pair, null::boolean as is_positive, null::float8 as cosine
        where false
    {%- endif %}
),

bucketed as (
    select
        pair,
        is_positive,
        {#- rounding can put a cosine a hair outside [-1, 1]: clamp into the end bins -#}
        least(greatest(width_bucket(cosine, -1.0, 1.0, {{ n_bins }}), 1), {{ n_bins }}) as bin
    from similarities
),

counts as (
    select
        pair,
        bin,
        count(*) filter (where is_positive) as positive_count,
        count(*) filter (where not is_positive) as negative_count
    from bucketed
    group by pair, bin
),

bins as (
    select
        pairs.pair,
        bin_numbers.bin
    from (select distinct pair from similarities) as pairs
    cross join generate_series(1, {{ n_bins }}) as bin_numbers (bin)
),

final as (
    select
        bins.pair,
        bins.bin,
        -1.0::float8 + (bins.bin - 1) * 2.0 / {{ n_bins }} as bin_low,
        -1.0::float8 + bins.bin * 2.0 / {{ n_bins }} as bin_high,
        coalesce(counts.positive_count, 0) as positive_count,
        coalesce(counts.negative_count, 0) as negative_count,
        coalesce(counts.positive_count, 0)::float8
        / nullif(sum(coalesce(counts.positive_count, 0)) over (partition by bins.pair), 0) as positive_share,
        coalesce(counts.negative_count, 0)::float8
        / nullif(sum(coalesce(counts.negative_count, 0)) over (partition by bins.pair), 0) as negative_share,
        {%- if negatives == 'all' %}
            'all_pairs'::text as negatives_method,
        {%- else %}
            'offsets_{{ negatives | int }}'::text as negatives_method,
        {%- endif %}
        now() as computed_at
    from bins
    left join counts
        on bins.pair = counts.pair
            and bins.bin = counts.bin
)

select * from final
