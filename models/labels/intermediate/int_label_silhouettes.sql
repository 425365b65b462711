{{ config(enabled=family_enabled('labels')) }}
{#- The cosine silhouette of every labelled product, with collection_section
    as the clustering, in every text space: s = (b - a) / max(a, b), where a
    is the mean cosine distance to the other products of its own section and
    b the smallest mean distance to another section's products; 0 when the
    product is alone in its section (as scikit-learn). Mean distances are
    exact and O(N x sections): for unit vectors the mean of 1 - x.y over a
    section is 1 - x.(sum of the section's vectors) / n. pgvector sums
    vectors in single precision, so the order of the rows changes the last
    bits: the sums run in product_id order, whatever order the rows are
    stored in. -#}

with

vectors as (
    select
        space,
        product_id,
        collection_section,
        l2_normalize(embedding) as unit_embedding
    from {{ ref('int_label_vectors') }}
),

section_sums as (
    select
        space,
        collection_section,
        count(*) as n_members,
        sum(unit_embedding order by product_id) as embedding_sum
    from vectors
    group by space, collection_section
),

mean_distances as (
    -- one row per (product, section of its space)
    select
        vectors.space,
        vectors.product_id,
        vectors.collection_section,
        section_sums.collection_section as to_section,
        section_sums.n_members,
        case
            when section_sums.collection_section = vectors.collection_section
                then case
                        when section_sums.n_members > 1
                            then
                                1 - (
                                    -(vectors.unit_embedding <#> section_sums.embedding_sum)
                                    + (vectors.unit_embedding <#> vectors.unit_embedding)
                                ) / (section_sums.n_members - 1)
                    end
            else 1 + (vectors.unit_embedding <#> section_sums.embedding_sum) / section_sums.n_members
        end as mean_distance
    from vectors
    inner join section_sums on vectors.space = section_sums.space
),

own_and_nearest as (
    select
        space,
        product_id,
        collection_section,
        max(n_members) filter (where to_section = collection_section) as section_size,
        max(mean_distance) filter (where to_section = collection_section) as own_mean_distance,
        min(mean_distance) filter (where to_section <> collection_section) as nearest_mean_distance,
        (array_agg(to_section order by mean_distance, to_section) filter (
            where to_section <> collection_section
        ))[1] as nearest_section
    from mean_distances
    group by space, product_id, collection_section
),

final as (
    select
        space,
        product_id,
        collection_section,
        section_size,
        own_mean_distance,
        nearest_section,
        nearest_mean_distance,
        case
            when section_size = 1 then 0
            when nearest_mean_distance is null then null
            when greatest(own_mean_distance, nearest_mean_distance) = 0 then 0
            else
                (nearest_mean_distance - own_mean_distance)
                / greatest(own_mean_distance, nearest_mean_distance)
        end::float8 as silhouette
    from own_and_nearest
)

select * from final
