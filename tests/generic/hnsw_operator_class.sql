{#- Every HNSW index on the model's table orders by the distance the
    retrieval metrics use: its operator class is metric_operator_class()
    (vector_cosine_ops for cosine distance). An index of another class
    (vector_ip_ops, vector_l2_ops) returns neighbours in another order, and
    the planner only uses it for that other operator. One failing row per
    such index, with what to do. -#}
{% test hnsw_operator_class(model, expected=none) %}
{%- set expected = expected or metric_operator_class() %}

with

indexes as (
    select
        index_class.relname as index_name,
        operator_classes.opcname as operator_class
    from pg_index as indexes
    inner join pg_class as index_class on indexes.indexrelid = index_class.oid
    inner join pg_am as methods on index_class.relam = methods.oid
    cross join lateral unnest(indexes.indclass::oid []) as classes (class_oid)
    inner join pg_opclass as operator_classes on classes.class_oid = operator_classes.oid
    where
        indexes.indrelid = '{{ model }}'::regclass
        and methods.amname = 'hnsw'
)

select
    index_name,
    operator_class,
    'HNSW index ' || index_name || ' uses ' || operator_class || ' but the metrics use '
    || {{ sql_string(expected) }} || ': rebuild it with ' || {{ sql_string(expected) }} as problem
from indexes
where operator_class <> {{ sql_string(expected) }}

{% endtest %}
