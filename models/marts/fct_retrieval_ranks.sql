with

text_to_image as (
    select * from {{ ref('int_text_to_image_ranked') }}
),

image_to_text as (
    select * from {{ ref('int_image_to_text_ranked') }}
),

final as (
    select * from text_to_image
    union all
    select * from image_to_text
)

select * from final
