with

text_to_image as (
    select * from {{ ref('int_text_to_image_ranked') }}
),

image_to_text as (
    select * from {{ ref('int_image_to_text_ranked') }}
),

dedup_tolerant as (
    select * from {{ ref('int_dedup_tolerant_ranked') }}
),

strict as (
    select * from text_to_image
    union all
    select * from image_to_text
),

-- the tolerant rank is the better of the positive's and its closest duplicate's
-- (null = beyond max(K)); without a duplicate in the gallery it is the strict rank
final as (
    select
        strict.*,
        case
            when dedup_tolerant.duplicate_rank is null then strict.positive_rank
            when strict.positive_rank is null then dedup_tolerant.duplicate_rank
            else least(strict.positive_rank, dedup_tolerant.duplicate_rank)
        end as dedup_tolerant_rank,
        coalesce(dedup_tolerant.n_gallery_duplicates, 0) as n_gallery_duplicates
    from strict
    left join dedup_tolerant
        on
            strict.pair = dedup_tolerant.pair
            and strict.direction = dedup_tolerant.direction
            and strict.product_id = dedup_tolerant.product_id
)

select * from final
