{#- Every vector in the column is L2-normalised (within tolerance). -#}
{% test unit_norm(model, column, tolerance=0.001) %}

select *
from {{ model }}
where abs(vector_norm({{ column }}) - 1) > {{ tolerance }}

{% endtest %}
