"""embed_udfs: the Python half of embed-metrics.

It runs what SQL cannot (encoders, reranking, clustering) and writes plain
tables that the dbt project declares as sources, tests and aggregates.
"""

__version__ = "0.1.0"
