"""Two-stage retrieval: rescore each query's stage-1 candidates (built by dbt in
intermediate.int_rerank_candidates) with a stronger model, into
embeddings.rerank_scores; dbt turns them into metrics.fct_rerank_ranks and
metrics.fct_rerank_uplift."""
