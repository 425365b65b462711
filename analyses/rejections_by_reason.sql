-- What was refused on the way to the metrics, by stage, space and reason.
with

rejected as (
    select * from {{ ref('fct_rejected_inputs') }}
)

select
    stage,
    space,
    reason,
    count(*) as n_rows
from rejected
group by stage, space, reason
order by n_rows desc
