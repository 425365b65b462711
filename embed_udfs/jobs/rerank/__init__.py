"""Two-stage retrieval: rescore each query's stage-1 candidates (built by dbt in
intermediate.int_rerank_candidates) with a stronger model, into
embeddings.rerank_scores; dbt turns them into metrics.fct_rerank_ranks and
metrics.fct_rerank_uplift. The job is in job.py.

This package's __init__ imports nothing: embed_udfs.store creates the tables of
store.py, and must not pull in the job (which imports embed_udfs.store)."""
