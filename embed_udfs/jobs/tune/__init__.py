"""`embed-udfs tune`: the recall/latency curve of an ANN index (HNSW ef_search, IVFFlat
probes) against exact neighbour lists, for every configured gallery or a user's own
table; written to embeddings.ann_tuning, which dbt keeps as metrics.fct_ann_tuning.

This package's __init__ imports nothing: embed_udfs.store creates the table of
store.py, and must not pull in the job (which imports embed_udfs.store)."""
