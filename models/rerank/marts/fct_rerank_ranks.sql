{{ config(enabled=family_enabled('rerank')) }}
{#- Stage-1 and stage-2 ranks of every query's positive, per reranker, pair
    and direction. Rank = 1 + candidates strictly closer (stage 1, cosine
    distance) or scored strictly higher (stage 2), so ties go in the query's
    favour. A positive outside the candidates is not retrieved (null) at
    both stages. A query with a candidate the reranker could not score (a
    missing image, a NaN score) keeps its stage-1 ranks and is_reranked is
    false. The dedup-tolerant twins count the closest of the positive and its
    duplicates. -#}

with

candidates as (
    select * from {{ ref('int_rerank_candidates') }}
),

scores as (
    select * from {{ ref('stg_rerank__scores') }}
),

scored as (
    select
        candidates.*,
        scores.score,
        -- the thresholds every candidate is compared with, per query
        max(candidates.stage1_distance) filter (where candidates.is_positive) over query as positive_distance,
        max(scores.score) filter (where candidates.is_positive) over query as positive_score,
        min(candidates.stage1_distance) filter (
            where candidates.is_positive or candidates.is_duplicate_of_positive
        ) over query as relevant_distance,
        max(scores.score) filter (
            where candidates.is_positive or candidates.is_duplicate_of_positive
        ) over query as relevant_score
    from candidates
    left join scores
        on
            candidates.reranker = scores.reranker
            and candidates.pair = scores.pair
            and candidates.direction = scores.direction
            and candidates.query_product_id = scores.query_product_id
            and candidates.candidate_product_id = scores.candidate_product_id
    window query as (partition by candidates.reranker, candidates.pair, candidates.direction, candidates.query_product_id)
),

per_query as (
    select
        reranker,
        pair,
        direction,
        query_product_id,
        collection_section,
        count(*)::integer as n_candidates,
        count(score)::integer as n_scored,
        bool_or(is_positive) as is_positive_retrieved,
        bool_or(is_positive or is_duplicate_of_positive) as is_relevant_retrieved,
        case when bool_or(is_positive) then 1 + count(*) filter (where stage1_distance < positive_distance) end
            as stage1_rank,
        case when bool_or(is_positive) then 1 + count(*) filter (where score > positive_score) end
            as scored_rank,
        case
            when bool_or(is_positive or is_duplicate_of_positive)
                then 1 + count(*) filter (where stage1_distance < relevant_distance)
        end as stage1_dedup_tolerant_rank,
        case
            when bool_or(is_positive or is_duplicate_of_positive)
                then 1 + count(*) filter (where score > relevant_score)
        end as scored_dedup_tolerant_rank,
        max(positive_score) as positive_score
    from scored
    group by reranker, pair, direction, query_product_id, collection_section
),

final as (
    select
        per_query.reranker,
        per_query.pair,
        per_query.direction,
        per_query.query_product_id,
        per_query.collection_section,
        per_query.n_candidates,
        per_query.n_scored,
        per_query.n_scored = per_query.n_candidates as is_reranked,
        per_query.is_positive_retrieved,
        per_query.stage1_rank::integer as stage1_rank,
        (case when per_query.n_scored = per_query.n_candidates then per_query.scored_rank else per_query.stage1_rank end)::integer
            as stage2_rank,
        per_query.stage1_dedup_tolerant_rank::integer as stage1_dedup_tolerant_rank,
        (
            case
                when per_query.n_scored = per_query.n_candidates then per_query.scored_dedup_tolerant_rank
                else per_query.stage1_dedup_tolerant_rank
            end
        )::integer as stage2_dedup_tolerant_rank,
        per_query.positive_score
    from per_query
)

select * from final
