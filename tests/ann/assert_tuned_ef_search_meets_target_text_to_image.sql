{{ config(severity='warn') }}
-- depends_on: {{ ref('int_eval_vectors') }}

{#- The tuned hnsw.ef_search of the text_to_image searches still reaches
    vars.ann_target_recall (neighbour recall@10) on the current eval
    vectors; a warning names each pair that fell short: re-run
    `embed-udfs tune`. -#}
{{ ann_tuned_recall_shortfalls('text_to_image') }}
