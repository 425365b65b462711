{{ config(severity='error') }}

{#- Each gallery as drawn must hold more products than the largest K: in a
    gallery of n products every positive ranks within n, so recall at K >= n
    is 1.0 whatever the model. vars.eval_sample_size is checked against K up
    front; this catches a catalog (or a space's vectors) smaller than that.
    A refresh runs this before it publishes, so such figures never reach BI. -#}

select
    space as gallery_space,
    count(*) as gallery_size,
    {{ max_k() }} as largest_k,
    'recall at K >= the gallery size is 1.0 whatever the model; lower vars.eval_k_values '
    || 'or embed more of the sample' as problem
from {{ ref('int_eval_vectors') }}
where {{ in_list('space', paired_space_names()) }}
group by space
having count(*) <= {{ max_k() }}
