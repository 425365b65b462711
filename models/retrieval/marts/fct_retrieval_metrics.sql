{{ config(enabled=family_enabled('retrieval')) }}
{#- Every retrieval metric per pair, direction and section (and ALL), in
    tidy form: the per-query scores of fct_retrieval_scores averaged by the
    one aggregator (macro summarise_scores), each row with n, hits (0/1
    scores) and a 95% interval that resamples clusters of queries
    (int_eval_bootstrap_weights), the independent-query interval (Wilson for
    recall, normal approximation for means) beside it, its evidence against
    ALL, and its dedup-tolerant twin. Each row says which search
    listed the neighbours (exact or hnsw) and, for the index, the bias that
    `embed-udfs tune` measured on that gallery (the sample's, or the
    catalog's own index) at the ef_search the search used.
    gallery_scope: each figure against the eval sample (`sample`), against
    the whole catalog (`catalog`) and, where the catalog allows, against the
    galleries between them (`sample_x<m>`: the sample's gallery and a fixed
    draw of the catalog, about m times its size; macro gallery_tiers), with
    its gallery_size; gallery_is_sample
    marks a catalog figure whose gallery is the sample's own (a catalog no
    larger than the sample), copied rather than searched twice. -#}
{%- set search_method = 'exact' if exact_search() else 'hnsw' %}
{%- set directions = retrieval_directions() %}

with

summary as (
    {{- summarise_scores(
        ref('fct_retrieval_scores'),
        ['pair', 'direction', 'query_space', 'gallery_space', 'gallery_scope', 'gallery_size', 'gallery_is_sample'],
        ref('int_eval_bootstrap_weights'),
    ) }}
),

tuning as (
    select * from {{ ref('stg_ann__tuning') }}
),

-- how each gallery was searched: the sample's by vars.retrieval_search, the
-- catalog's by macro catalog_search_method (the sample's own lists where equal),
-- the tiers between them exactly (macro gallery_tiers)
{%- set methods = [] %}
{%- for d in directions %}
    {%- do methods.append([d.pair, d.direction, 'sample', search_method]) %}
    {%- do methods.append([d.pair, d.direction, 'catalog',
        search_method if catalog_gallery_is_sample(d.gallery.name)
        else catalog_search_method(d.query.name, d.gallery.name)]) %}
    {%- for tier in gallery_tiers(d.query.name, d.gallery.name) %}
        {%- do methods.append([d.pair, d.direction, tier.scope, 'exact']) %}
    {%- endfor %}
{%- endfor %}
search_methods as (
    {%- for pair, direction, scope, method in methods %}
        select
            {{ sql_string(pair) }}::text as pair,
            {{ sql_string(direction) }}::text as direction,
            {{ sql_string(scope) }}::text as gallery_scope,
            {{ sql_string(method) }}::text as search_method
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not methods %}
    {{ empty_relation({'pair': 'text', 'direction': 'text', 'gallery_scope': 'text', 'search_method': 'text'}) }}
    {%- endif %}
),

-- the index figure minus the exact one, per (gallery scope, pair, direction,
-- metric), at the ef_search each direction's search of that scope ran with
-- (macro ann_ef_search_used): tune measures the sample's galleries (targets of
-- kind space) and the catalog's own indexes (kind catalog)
index_bias as (
    {%- for scope in ['sample', 'catalog'] %}
        select
            {{ sql_string(scope) }}::text as gallery_scope,
            pair,
            direction,
            query_space,
            gallery_space,
            metric || '_at_' || k as metric,
            bias
        from tuning
        where
            target_kind = {{ sql_string(ann_target_kind(scope)) }}
            and search_param = 'ef_search'
            and iterative_scan = 'off'
            and bias is not null
            and search_value = case direction
                when 'text_to_image' then {{ ann_ef_search_used('text_to_image', scope) }}
                when 'image_to_text' then {{ ann_ef_search_used('image_to_text', scope) }}
            end
        {{ "union all" if not loop.last }}
    {%- endfor %}
),

final as (
    select
        summary.*,
        search_methods.search_method,
        -- a catalog gallery that is the sample's own has the sample's lists, so its bias
        case when search_methods.search_method = 'hnsw' then index_bias.bias end as index_bias,
        now() as computed_at
    from summary
    left join search_methods
        on
            summary.pair = search_methods.pair
            and summary.direction = search_methods.direction
            and summary.gallery_scope = search_methods.gallery_scope
    left join index_bias
        on
            index_bias.gallery_scope
            = case when summary.gallery_is_sample then 'sample' else summary.gallery_scope end
            and summary.pair = index_bias.pair
            and summary.direction = index_bias.direction
            and summary.query_space = index_bias.query_space
            and summary.gallery_space = index_bias.gallery_space
            and summary.metric = index_bias.metric
)

select * from final
