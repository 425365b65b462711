{#- Galleries between the sample and the whole catalog, for R@K against
    gallery size: for each multiple m of vars.gallery_tiers, gallery_scope
    `sample_x<m>`, a gallery of about m times the sample's products. It holds
    the sample's gallery and a fixed draw of the other catalog products: a
    product outside the sample is in it when the first 32 bits of
    md5(product_id) fall below the share (m s - s) / (N - s) of their range,
    with s the sample's and N the catalog's gallery size in that space. The
    draw is the same for every multiple, so the galleries nest: sample within
    sample_x10 within sample_x100 within catalog, the positive in each, and
    with exact search no query ranks its positive better in a larger one.

    A tier exists for a pair's direction where it lies strictly between the
    sample and the catalog (s < m s < N) and its exact search stays within
    vars.catalog_exact_max_pairs (sampled queries x m s inner products). It
    is always searched exactly (int_tier_retrieval_neighbours): it has no
    index of its own. -#}


{#- The tiers of one direction: a list of {scope, multiple, size, threshold}
    (threshold: the draw's 32-bit bound), smallest first; empty at parse time
    or where the catalog is no larger than the sample. -#}
{% macro gallery_tiers(query_space, gallery_space) %}
    {%- set tiers = [] -%}
    {%- set sizes = gallery_sizes() -%}
    {%- set queries = sizes.get(query_space, {}).get('sample') -%}
    {%- set sample = sizes.get(gallery_space, {}).get('sample') -%}
    {%- set catalog = sizes.get(gallery_space, {}).get('catalog') -%}
    {%- if not queries or not sample or not catalog or catalog <= sample -%}
        {{ return(tiers) }}
    {%- endif -%}
    {%- for multiple in var('gallery_tiers', []) | map('int') | unique | sort -%}
        {%- set size = multiple * sample -%}
        {%- if sample < size < catalog and queries * size <= var('catalog_exact_max_pairs') | int -%}
            {%- do tiers.append({
                'scope': 'sample_x' ~ multiple,
                'multiple': multiple,
                'size': size,
                'threshold': ((size - sample) * 4294967296 + catalog - sample - 1) // (catalog - sample),
            }) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(tiers) }}
{% endmacro %}


{#- Every tier scope any direction has, in multiple order (for the marts'
    scope lists). -#}
{% macro gallery_tier_scopes() %}
    {%- set scopes = {} -%}
    {%- for d in retrieval_directions() -%}
        {%- for tier in gallery_tiers(d.query.name, d.gallery.name) -%}
            {%- do scopes.update({tier.multiple: tier.scope}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(scopes | dictsort | map(attribute=1) | list) }}
{% endmacro %}


{#- Whether a catalog row (`alias`, with product_id) of `gallery_space` is
    in `tier`'s gallery: a product of the sample's gallery (`sample`, a
    relation of space and product_id rows), or one the draw takes. -#}
{% macro in_gallery_tier(alias, tier, gallery_space, sample) -%}
    (
        ('x' || substr(md5({{ alias }}.product_id), 1, 8))::bit(32)::bigint < {{ tier.threshold }}
        or exists (
            select 1 from {{ sample }} as tier_sample
            where tier_sample.space = {{ sql_string(gallery_space) }} and tier_sample.product_id = {{ alias }}.product_id
        )
    )
{%- endmacro %}


{#- The state the tier lists were searched in (lists_state): the whole-
    catalog lists' state of both directions (macro catalog_lists_state) and
    every direction's tiers (their multiples, sizes and draw bounds). None
    where either direction's catalog state is none (search again). -#}
{% macro gallery_tiers_state() %}
    {%- set parts = [] -%}
    {%- for direction in ['text_to_image', 'image_to_text'] -%}
        {%- set state = catalog_lists_state(direction) -%}
        {%- if state is none -%}
            {{ return(none) }}
        {%- endif -%}
        {%- do parts.append(state) -%}
    {%- endfor -%}
    {%- for d in retrieval_directions() -%}
        {%- for tier in gallery_tiers(d.query.name, d.gallery.name) -%}
            {%- do parts.append([d.pair, d.direction, tier.scope, tier.size, tier.threshold] | join(':')) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(local_md5(parts | join('|'))) }}
{% endmacro %}
