{{ config(enabled=family_enabled('retrieval')) }}
{#- Every query's score on every retrieval metric: one row per (pair,
    direction, query product, metric, k), a strict score and its
    dedup-tolerant twin, each in [0, 1]. fct_retrieval_metrics averages them
    (macro summarise_scores). A new metric is one row of `scored` below: its
    name, k, interval method (wilson for a 0/1 score, normal for a mean) and
    the strict and tolerant expressions over a query's ranks and list.

    - recall_at_K: the positive within K (tolerant: the positive or a
      duplicate of it).
    - mrr_at_maxK: 1 / rank, 0 beyond max(K).
    - ndcg_at_10: binary relevance, one relevant item (the positive), so the
      ideal DCG is 1 and nDCG = 1 / log2(1 + rank) within 10. Tolerant:
      graded relevance, gain 1 for the positive and 0.5 for each duplicate of
      it, each at its own rank (1 + items strictly closer) within 10,
      normalised by the same ideal (the positive first) and capped at 1: a
      duplicate near the top earns back part of a miss, never more than a
      perfect list, and with no duplicate the twin equals the strict score.
    - section_purity_at_10: the share of the query's top 10 neighbours in
      the query's section (the positive included). It does not depend on
      which item is the positive, so the tolerant twin is the same.
    With max(K) below 10 the list-based cut-off is max(K).
    Every query is scored against every gallery of fct_retrieval_ranks
    (gallery_scope sample, catalog, and the sample_x<m> between them, with
    gallery_size). -#}
{%- set k_values = var('eval_k_values') | sort %}
{%- set max_k = max_k() %}
{%- set list_k = [10, max_k] | min %}

with

ranks as (
    select * from {{ ref('fct_retrieval_ranks') }}
),

all_neighbours as (
    select
        'sample'::text as gallery_scope,
        sample_lists.*
    from {{ ref('int_retrieval_neighbours') }} as sample_lists
    union all
    select
        'catalog'::text as gallery_scope,
        catalog_lists.*
    from {{ ref('int_catalog_retrieval_neighbours') }} as catalog_lists
    union all
    select
        tier_lists.gallery_scope,
        {{ retrieval_list_columns('tier_lists') }}
    from {{ ref('int_tier_retrieval_neighbours') }} as tier_lists
),

neighbours as (
    select * from all_neighbours
    where neighbour_rank <= {{ list_k }}
),

-- each duplicate of the positive in a list, at its own rank: 1 + the listed
-- items strictly closer (queries with duplicates in the gallery only)
listed_duplicates as (
    select
        duplicates.gallery_scope,
        duplicates.pair,
        duplicates.direction,
        duplicates.query_product_id,
        duplicates.neighbour_product_id,
        1 + count(*) filter (where closer.distance < duplicates.distance) as duplicate_rank
    from all_neighbours as duplicates
    inner join all_neighbours as closer
        on
            duplicates.gallery_scope = closer.gallery_scope
            and duplicates.pair = closer.pair
            and duplicates.direction = closer.direction
            and duplicates.query_product_id = closer.query_product_id
    where duplicates.is_duplicate_of_positive
    group by
        duplicates.gallery_scope,
        duplicates.pair,
        duplicates.direction,
        duplicates.query_product_id,
        duplicates.neighbour_product_id
),

duplicate_gains as (
    select
        gallery_scope,
        pair,
        direction,
        query_product_id,
        sum(0.5 / log(2, 1 + duplicate_rank)) as duplicate_dcg
    from listed_duplicates
    where duplicate_rank <= {{ list_k }}
    group by gallery_scope, pair, direction, query_product_id
),

purity as (
    select
        gallery_scope,
        pair,
        direction,
        query_product_id,
        count(*) filter (where neighbour_section = collection_section)::numeric / count(*) as section_purity
    from neighbours
    group by gallery_scope, pair, direction, query_product_id
),

per_query as (
    select
        ranks.*,
        coalesce(case when ranks.positive_rank <= {{ list_k }} then 1 / log(2, 1 + ranks.positive_rank) end, 0)
            as positive_dcg,
        coalesce(duplicate_gains.duplicate_dcg, 0) as duplicate_dcg,
        coalesce(purity.section_purity, 0) as section_purity
    from ranks
    left join duplicate_gains
        on
            ranks.gallery_scope = duplicate_gains.gallery_scope
            and ranks.pair = duplicate_gains.pair
            and ranks.direction = duplicate_gains.direction
            and ranks.product_id = duplicate_gains.query_product_id
    left join purity
        on
            ranks.gallery_scope = purity.gallery_scope
            and ranks.pair = purity.pair
            and ranks.direction = purity.direction
            and ranks.product_id = purity.query_product_id
),

scored as (
    select
        per_query.pair,
        per_query.direction,
        per_query.query_space,
        per_query.gallery_space,
        per_query.product_id,
        per_query.collection_section,
        per_query.gallery_scope,
        per_query.gallery_size,
        per_query.gallery_is_sample,
        metrics.metric,
        metrics.k,
        metrics.interval_method,
        metrics.score,
        metrics.dedup_tolerant_score
    from per_query
    cross join lateral (
        values
        {%- for k in k_values %}
            (
                'recall_at_{{ k }}', {{ k }}, 'wilson',
                (case when per_query.positive_rank <= {{ k }} then 1 else 0 end)::numeric,
                (case when per_query.dedup_tolerant_rank <= {{ k }} then 1 else 0 end)::numeric
            ),
        {%- endfor %}
        (
            'mrr_at_{{ max_k }}', {{ max_k }}, 'normal',
            coalesce(1.0 / per_query.positive_rank, 0),
            coalesce(1.0 / per_query.dedup_tolerant_rank, 0)
        ),
        (
            'ndcg_at_{{ list_k }}', {{ list_k }}, 'normal',
            per_query.positive_dcg,
            least(1, per_query.positive_dcg + per_query.duplicate_dcg)
        ),
        (
            'section_purity_at_{{ list_k }}', {{ list_k }}, 'normal',
            per_query.section_purity,
            per_query.section_purity
        )
    ) as metrics (metric, k, interval_method, score, dedup_tolerant_score)
),

final as (
    select
        pair,
        direction,
        query_space,
        gallery_space,
        product_id,
        collection_section,
        gallery_scope,
        gallery_size,
        gallery_is_sample,
        metric,
        k::integer as k,
        interval_method,
        score::numeric as score,
        dedup_tolerant_score::numeric as dedup_tolerant_score
    from scored
)

select * from final
