"""The tables `embed-udfs rerank` writes, beside embeddings.vectors: the scores
and the (query, candidate) pairs that could not be scored, with the reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from embed_udfs import contract
from embed_udfs.config import ProjectConfig

KEY = ("reranker", "pair", "direction", "query_product_id", "candidate_product_id")


def _schema(config: ProjectConfig) -> str:
    return contract.RERANK_SCORES.resolve(config).schema


def scores_table(config: ProjectConfig) -> sql.Composable:
    return contract.RERANK_SCORES.resolve(config).identifier


def errors_table(config: ProjectConfig) -> sql.Composable:
    return contract.rerank_errors(config).identifier


def bootstrap(conn: psycopg.Connection, config: ProjectConfig) -> None:
    """Create the rerank tables if they do not exist (idempotent; the caller commits)."""
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(_schema(config))))
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                reranker text not null,
                pair text not null,
                direction text not null,
                query_product_id text not null,
                candidate_product_id text not null,
                score double precision not null check (score = score),
                scorer_ref text not null,
                input_hash text not null,
                scored_at timestamptz not null default now(),
                primary key (reranker, pair, direction, query_product_id, candidate_product_id)
            )
            """
        ).format(scores_table(config))
    )
    conn.execute(
        sql.SQL(
            """
            create table if not exists {} (
                reranker text not null,
                pair text not null,
                direction text not null,
                query_product_id text not null,
                candidate_product_id text not null,
                input_hash text not null,
                reason text not null,
                detail text,
                occurred_at timestamptz not null default now(),
                primary key (reranker, pair, direction, query_product_id, candidate_product_id)
            )
            """
        ).format(errors_table(config))
    )


@dataclass(frozen=True)
class Scored:
    key: tuple[str, str, str, str, str]
    score: float
    input_hash: str


@dataclass(frozen=True)
class Unscored:
    key: tuple[str, str, str, str, str]
    input_hash: str
    reason: str
    detail: str = ""


def write_chunk(
    conn: psycopg.Connection,
    config: ProjectConfig,
    scored: Sequence[Scored],
    unscored: Sequence[Unscored],
    scorer_ref: str,
) -> None:
    """Upsert a chunk of scores and errors; the caller commits, so a chunk lands whole.

    A pair that is scored now loses its old error row, and an error replaces an old score.
    """
    with conn.cursor() as cur:
        if scored:
            cur.execute(
                "create temp table if not exists _incoming_scores (reranker text, pair text, "
                "direction text, query_product_id text, candidate_product_id text, "
                "score double precision, input_hash text) on commit delete rows"
            )
            with cur.copy(
                "copy _incoming_scores (reranker, pair, direction, query_product_id, "
                "candidate_product_id, score, input_hash) from stdin"
            ) as copy:
                for row in scored:
                    copy.write_row((*row.key, row.score, row.input_hash))
            cur.execute(
                sql.SQL(
                    """
                    insert into {} (reranker, pair, direction, query_product_id,
                        candidate_product_id, score, scorer_ref, input_hash, scored_at)
                    select reranker, pair, direction, query_product_id, candidate_product_id,
                        score, %s, input_hash, clock_timestamp()
                    from _incoming_scores
                    on conflict (reranker, pair, direction, query_product_id, candidate_product_id)
                    do update set score = excluded.score, scorer_ref = excluded.scorer_ref,
                        input_hash = excluded.input_hash, scored_at = excluded.scored_at
                    """
                ).format(scores_table(config)),
                (scorer_ref,),
            )
            cur.execute(
                sql.SQL(
                    """
                    delete from {} as e using _incoming_scores as s
                    where (e.reranker, e.pair, e.direction, e.query_product_id,
                           e.candidate_product_id)
                        = (s.reranker, s.pair, s.direction, s.query_product_id,
                           s.candidate_product_id)
                    """
                ).format(errors_table(config))
            )
            cur.execute("truncate _incoming_scores")
        if unscored:
            cur.executemany(
                sql.SQL(
                    """
                    insert into {} (reranker, pair, direction, query_product_id,
                        candidate_product_id, input_hash, reason, detail)
                    values (%s, %s, %s, %s, %s, %s, %s, %s)
                    on conflict (reranker, pair, direction, query_product_id, candidate_product_id)
                    do update set input_hash = excluded.input_hash, reason = excluded.reason,
                        detail = excluded.detail, occurred_at = now()
                    """
                ).format(errors_table(config)),
                [(*u.key, u.input_hash, u.reason, u.detail or None) for u in unscored],
            )
            cur.executemany(
                sql.SQL(
                    "delete from {} where reranker = %s and pair = %s and direction = %s "
                    "and query_product_id = %s and candidate_product_id = %s"
                ).format(scores_table(config)),
                [u.key for u in unscored],
            )
