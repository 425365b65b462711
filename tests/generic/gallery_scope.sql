{#- Every value names a gallery: `sample`, `catalog`, or a tier between them,
    `sample_x<m>` with m a whole multiple of at least 2 (macro gallery_tiers). -#}
{% test gallery_scope(model, column_name) %}

select *
from {{ model }}
where {{ column_name }} not in ('sample', 'catalog') and {{ column_name }} !~ '^sample_x([2-9]|[1-9][0-9]+)$'

{% endtest %}
