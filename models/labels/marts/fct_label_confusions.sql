{{ config(enabled=family_enabled('labels')) }}
{#- The section pairs that 1-NN confuses most, per text space: one row per
    (space, section, neighbour_section) where a product's nearest neighbour
    is in another section, with how often, as a share of the section's
    products, and ranked (1 = the most frequent confusion in the space). -#}

with

neighbours as (
    select * from {{ ref('int_label_neighbours') }}
),

section_sizes as (
    select
        space,
        collection_section,
        count(*) as n_section
    from neighbours
    group by space, collection_section
),

confusions as (
    select
        space,
        collection_section,
        neighbour_section,
        count(*) as n_confused
    from neighbours
    where not is_same_section
    group by space, collection_section, neighbour_section
),

final as (
    select
        confusions.space,
        confusions.collection_section as section,
        confusions.neighbour_section,
        confusions.n_confused,
        section_sizes.n_section,
        confusions.n_confused::float8 / section_sizes.n_section as share_of_section,
        row_number() over (
            partition by confusions.space
            order by
                confusions.n_confused desc, confusions.collection_section asc, confusions.neighbour_section asc
        ) as confusion_rank,
        now() as computed_at
    from confusions
    inner join section_sizes
        on
            confusions.space = section_sizes.space
            and confusions.collection_section = section_sizes.collection_section
)

select * from final
