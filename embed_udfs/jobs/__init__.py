"""Python jobs: each reads one dbt model, writes one table that dbt declares as a
source, is incremental and resumable, and reports what it did.

- base.py: the interface (Job, its declared options, JobSummary) and what the jobs
  share (sharding, splitting a batch on GPU out-of-memory, the progress bar);
- registry.py: the jobs in their declared order, and register_job for outside ones;
- one package per job: backfill/, cluster/, rerank/, tune/.

This __init__ imports nothing, so that embed_udfs.store can create the tables of
jobs/rerank/store.py and jobs/tune/store.py without loading the jobs themselves.
"""
