{#- Deduplication settings and the near-duplicate search.

    Exact duplicates: the same text under vars.dedup_text_variant, or the same
    image bytes (equal input_hash within one image space). Near duplicates:
    cosine distance below vars.near_duplicate_max_distance in the space marked
    `near_duplicates: true` in vars.embed_spaces, found through that space's
    HNSW index (top vars.near_duplicate_k neighbours per product). -#}

{#- The space marked for the near-duplicate search, as a list of zero or one
    name (zero: only exact duplicates are found). -#}
{% macro near_duplicate_space_names() %}
    {%- set names = embedding_spaces() | selectattr('near_duplicates') | map(attribute='name') | list -%}
    {%- if names | length > 1 -%}
        {{ exceptions.raise_compiler_error(
            "Spaces " ~ (names | join(', ')) ~ " are all marked near_duplicates: true in vars.embed_spaces."
            ~ " The near-duplicate search runs in one space (its distance threshold is one number):"
            ~ " keep the mark on one of them."
        ) }}
    {%- endif -%}
    {{ return(names) }}
{% endmacro %}


{#- vars.near_duplicate_max_distance and vars.near_duplicate_k, checked. -#}
{% macro near_duplicate_max_distance() %}
    {%- set value = var('near_duplicate_max_distance') -%}
    {%- if value is not number or value <= 0 or value >= 2 -%}
        {{ exceptions.raise_compiler_error(
            "vars.near_duplicate_max_distance is " ~ value ~ "; it is a cosine distance, so use a number"
            ~ " between 0 and 2 (small: 0.01 to 0.05 finds re-listings of one product)."
        ) }}
    {%- endif -%}
    {{ return(value) }}
{% endmacro %}


{% macro near_duplicate_k() %}
    {%- set k = var('near_duplicate_k') -%}
    {%- if k is not number or k < 1 or k + 1 > var('hnsw_ef_search') | int -%}
        {{ exceptions.raise_compiler_error(
            "vars.near_duplicate_k is " ~ k ~ "; use a positive integer below vars.hnsw_ef_search ("
            ~ var('hnsw_ef_search') ~ "): an HNSW scan returns at most ef_search rows."
        ) }}
    {%- endif -%}
    {{ return(k) }}
{% endmacro %}


{#- For every product in `relation` (rows of space, product_id, embedding),
    its top near_duplicate_k neighbours in the space's HNSW index closer than
    near_duplicate_max_distance: one index scan per product (ORDER BY <=>
    LIMIT k + 1, the product itself included), never an N^2 scan. Needs
    set_ef_search() in the model's pre_hook. `queries` (a relation or CTE of
    the same columns, by default `relation`) narrows who searches. -#}
{% macro near_duplicate_neighbours(relation, space_name, queries=none) %}
    {%- set dim = embedding_space(space_name).dim %}
    select
        queries.product_id,
        nearest.product_id as neighbour_id,
        nearest.distance
    from {{ queries or relation }} as queries
    cross join lateral (
        select
            gallery.product_id,
            gallery.embedding::vector({{ dim }}) <=> queries.embedding::vector({{ dim }}) as distance
        from {{ relation }} as gallery
        where gallery.space = {{ sql_string(space_name) }}
        order by gallery.embedding::vector({{ dim }}) <=> queries.embedding::vector({{ dim }})
        limit {{ near_duplicate_k() + 1 }}
    ) as nearest
    where
        queries.space = {{ sql_string(space_name) }}
        and nearest.product_id <> queries.product_id
        and nearest.distance < {{ near_duplicate_max_distance() }}
{% endmacro %}


{#- Post-hook of int_near_duplicate_neighbours: the pairs with an end whose
    vector changed after the pair was found, or that has no vector in the
    pair's space any more. One statement per end: each NOT EXISTS alone is
    an anti-join (one pass over the vectors), where the two joined by OR
    would be a subquery run per pair (pairs x catalog: 548 s for 5,000 pairs
    among 1,000,000 vectors). -#}
{% macro delete_stale_near_duplicates(pairs, vectors) %}
{%- for end in ['product_id', 'neighbour_id'] %}
delete from {{ pairs }} as pair
where
    not exists (
        select 1 from {{ vectors }} as vectors
        where vectors.space = pair.space and vectors.product_id = pair.{{ end }}
            and vectors.changed_at <= pair.found_at
    );
{%- endfor %}
{% endmacro %}


{#- Turns the seed labels of a components table (product_id, duplicate_group_id)
    into the smallest product_id of each connected component of the links in
    `pairs` (product_id, duplicate_id). Two steps per round: every product takes
    the smallest label among its links, then every label is replaced by its own
    label until none changes (pointer jumping, which halves a chain's length each
    time). A round that changes no label is the fixed point: every link then
    joins two equal labels, and the smallest member kept its own id. -#}
{% macro propagate_component_labels(components, pairs) %}
do $$
declare
    hooked bigint;
    jumped bigint;
begin
    create temporary table component_links on commit drop as
    select product_id as from_id, duplicate_id as to_id from {{ pairs }}
    union all
    select duplicate_id as from_id, product_id as to_id from {{ pairs }};
    create index on component_links (from_id);
    create index on {{ components }} (product_id);
    analyze component_links;
    analyze {{ components }};
    loop
        update {{ components }} as component
        set duplicate_group_id = smallest.label
        from (
            select
                component_links.from_id as product_id,
                min(linked.duplicate_group_id) as label
            from component_links
            inner join {{ components }} as linked
                on component_links.to_id = linked.product_id
            group by component_links.from_id
        ) as smallest
        where component.product_id = smallest.product_id
            and smallest.label < component.duplicate_group_id;
        get diagnostics hooked = row_count;
        loop
            update {{ components }} as component
            set duplicate_group_id = parent.duplicate_group_id
            from {{ components }} as parent
            where parent.product_id = component.duplicate_group_id
                and parent.duplicate_group_id < component.duplicate_group_id;
            get diagnostics jumped = row_count;
            exit when jumped = 0;
        end loop;
        exit when hooked = 0;
    end loop;
end
$$
{% endmacro %}
