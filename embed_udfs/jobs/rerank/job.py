"""`embed-udfs rerank`: score every stage-1 candidate (intermediate.int_rerank_candidates)
with a configured reranker and write embeddings.rerank_scores.

Incremental: a pair's input_hash covers the scorer (model and weights) and what it
read (the text and the image, by their backfill hashes), so a rerun scores only new
or changed pairs. Committed per chunk, so a killed run loses at most one chunk.
Shardable by query product (--shard I/N). Pairs that cannot be scored (a missing
image, a NaN score) go to embeddings.rerank_errors with the reason, and dbt keeps
their query in stage-1 order.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from embed_udfs import contract, store
from embed_udfs.config import ProjectConfig, RerankerConfig
from embed_udfs.db import ConnectionSettings, connect
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import EmbedUdfsError
from embed_udfs.jobs.base import (
    Job,
    JobOptions,
    JobSummary,
    Shard,
    option,
    progress_bar,
    split_on_out_of_memory,
)
from embed_udfs.jobs.rerank import store as rerank_store
from embed_udfs.jobs.rerank.scorers import Scorer, load_scorer, require_scorers

log = logging.getLogger(__name__)

NON_FINITE = "non-finite score: the reranker returned NaN or infinity"
NOT_EMBEDDED = "no stored vector for an input: run `embed-udfs backfill` first"


@dataclass(frozen=True)
class RerankOptions:
    batch_size: int | None = None  # pairs per forward; None = the reranker's batch_size
    chunk_size: int = 4096  # pairs per committed chunk
    device: str | None = None
    precision: str = "auto"
    shard: Shard = field(default_factory=Shard)
    dry_run: bool = False


@dataclass
class RerankSummary:
    reranker: str
    shard: str = "0/1"
    scored: int = 0
    unchanged: int = 0
    unscored: Counter[str] = field(default_factory=Counter)
    queries: int = 0
    seconds: float = 0.0
    scorer_ref: str = ""

    @property
    def rate(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        text = (
            f"{self.reranker}: scored {self.scored} pairs of {self.queries} queries, "
            f"unchanged {self.unchanged}, unscored {sum(self.unscored.values())}"
        )
        if self.shard != "0/1":
            text += f" (shard {self.shard})"
        if self.scored:
            text += f"; {self.rate:.1f} pairs/s"
        for reason, count in self.unscored.most_common():
            text += f"\n    {count:>6}  {reason}"
        return text


@dataclass(frozen=True)
class PairItem:
    key: tuple[str, str, str, str, str]  # reranker, pair, direction, query, candidate
    text_id: str
    image_id: str
    input_hash: str


@dataclass
class RerankPlan:
    todo: list[PairItem]
    unchanged: int
    texts: dict[str, str]  # product id -> what the pair's text space was fed
    images: dict[str, str]  # product id -> image URI
    unscorable: list[rerank_store.Unscored]  # no stored input hash: recorded, not scored
    queries: int


def pair_hash(scorer_ref: str, text_hash: str, image_hash: str) -> str:
    return hashlib.sha256(f"{scorer_ref}\0{text_hash}\0{image_hash}".encode()).hexdigest()


def plan(
    conn: psycopg.Connection,
    config: ProjectConfig,
    reranker: RerankerConfig,
    scorer_ref: str,
    shard: Shard,
) -> RerankPlan:
    """This shard's candidates of one reranker, split into new or changed pairs and the rest."""
    pairs = {p.name: p for p in config.pairs}
    try:
        rows = conn.execute(
            sql.SQL(
                "select pair, direction, query_product_id, candidate_product_id from {} "
                "where reranker = %s order by pair, direction, query_product_id, stage1_rank"
            ).format(contract.RERANK_CANDIDATES.identifier),
            (reranker.name,),
        ).fetchall()
    except psycopg.errors.UndefinedTable as exc:
        conn.rollback()
        raise EmbedUdfsError(
            f"{contract.RERANK_CANDIDATES} does not exist: dbt builds the stage-1 candidates. "
            "Run `embed-udfs refresh`, or `dbt build --select +int_rerank_candidates` first."
        ) from exc
    rows = [row for row in rows if shard.owns(row[2])]
    spaces = sorted(
        {pairs[p].text_space for p, *_ in rows} | {pairs[p].image_space for p, *_ in rows}
    )
    inputs: dict[tuple[str, str], str] = {
        (space, pid): text
        for space, pid, text in conn.execute(
            sql.SQL(
                "select space, product_id, model_input from {} where space = any(%s) "
                "and model_input is not null"
            ).format(contract.SPACE_INPUTS.identifier),
            (spaces,),
        ).fetchall()
    }
    hashes: dict[tuple[str, str], str] = {
        (space, pid): digest
        for space, pid, digest in conn.execute(
            sql.SQL("select space, product_id, input_hash from {} where space = any(%s)").format(
                store.vectors_table(config)
            ),
            (spaces,),
        ).fetchall()
    }
    # Only scores count as done: a pair that failed (an image missing then, a NaN) is
    # tried again, since the file may be back and trying costs little.
    done = {
        tuple(key): digest
        for *key, digest in conn.execute(
            sql.SQL(
                "select reranker, pair, direction, query_product_id, candidate_product_id, "
                "input_hash from {} where reranker = %s"
            ).format(rerank_store.scores_table(config)),
            (reranker.name,),
        ).fetchall()
    }
    result = RerankPlan([], 0, {}, {}, [], len({(p, d, q) for p, d, q, _ in rows}))
    for pair_name, direction, query_id, candidate_id in rows:
        pair = pairs[pair_name]
        text_id, image_id = (
            (query_id, candidate_id) if direction == "text_to_image" else (candidate_id, query_id)
        )
        key = (reranker.name, pair_name, direction, query_id, candidate_id)
        text_hash = hashes.get((pair.text_space, text_id))
        image_hash = hashes.get((pair.image_space, image_id))
        text = inputs.get((pair.text_space, text_id))
        uri = inputs.get((pair.image_space, image_id))
        if text_hash is None or image_hash is None or text is None or uri is None:
            result.unscorable.append(rerank_store.Unscored(key, "", NOT_EMBEDDED))
            continue
        digest = pair_hash(scorer_ref, text_hash, image_hash)
        if done.get(key) == digest:
            result.unchanged += 1
            continue
        result.texts[text_id] = text
        result.images[image_id] = uri
        result.todo.append(PairItem(key, text_id, image_id, digest))
    return result


def rerank(
    settings: ConnectionSettings,
    config: ProjectConfig,
    reranker: RerankerConfig,
    options: RerankOptions | None = None,
    *,
    scorer_factory: Callable[[RerankerConfig], Scorer] | None = None,
    on_commit: Callable[[int, int], None] | None = None,
) -> RerankSummary:
    """Score this shard's new or changed candidate pairs of one reranker; say what happened."""
    options = options or RerankOptions()
    summary = RerankSummary(reranker=reranker.name, shard=str(options.shard))
    if scorer_factory is None:

        def scorer_factory(reranker: RerankerConfig) -> Scorer:
            return load_scorer(reranker, options.device, options.precision, config.ingest)

    scorer = scorer_factory(reranker)
    summary.scorer_ref = scorer.scorer_ref
    with connect(settings, application_name="embed-udfs rerank") as conn:
        store.bootstrap(conn, config)
        work = plan(conn, config, reranker, scorer.scorer_ref, options.shard)
        summary.unchanged, summary.queries = work.unchanged, work.queries
        summary.unscored.update(u.reason for u in work.unscorable)
        if options.dry_run:
            summary.scored = len(work.todo)
            return summary
        rerank_store.write_chunk(conn, config, [], work.unscorable, scorer.scorer_ref)
        conn.commit()
        if not work.todo:
            return summary

        started = time.perf_counter()
        scorer.prepare(work.texts, work.images)
        batch_size = options.batch_size or reranker.batch_size
        scored: list[rerank_store.Scored] = []
        unscored: list[rerank_store.Unscored] = []
        chunks = 0
        progress = progress_bar(len(work.todo), f"{reranker.name}: scoring", "pair", smoothing=0.1)
        with progress:
            for start in range(0, len(work.todo), batch_size):
                batch = work.todo[start : start + batch_size]
                scores, failures = score_splitting(scorer, [(i.text_id, i.image_id) for i in batch])
                for position, item in enumerate(batch):
                    if position in failures:
                        reason, detail = failures[position]
                        unscored.append(
                            rerank_store.Unscored(item.key, item.input_hash, reason, detail)
                        )
                    elif not np.isfinite(scores[position]):
                        unscored.append(
                            rerank_store.Unscored(
                                item.key, item.input_hash, NON_FINITE, repr(float(scores[position]))
                            )
                        )
                    else:
                        scored.append(
                            rerank_store.Scored(item.key, float(scores[position]), item.input_hash)
                        )
                last = start + batch_size >= len(work.todo)
                if len(scored) + len(unscored) >= options.chunk_size or last:
                    rerank_store.write_chunk(conn, config, scored, unscored, scorer.scorer_ref)
                    conn.commit()
                    chunks += 1
                    summary.scored += len(scored)
                    summary.unscored.update(u.reason for u in unscored)
                    progress.update(len(scored) + len(unscored))
                    if on_commit is not None:
                        on_commit(chunks, len(scored) + len(unscored))
                    scored, unscored = [], []
        summary.seconds = time.perf_counter() - started
    return summary


def score_splitting(
    scorer: Scorer, pairs: Sequence[tuple[str, str]]
) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
    """scorer.score(pairs); on CUDA out-of-memory, split the batch in two and go on."""
    return split_on_out_of_memory(scorer.score, pairs, _join_scores, "pairs")


def _join_scores(
    first: tuple[np.ndarray, dict[int, tuple[str, str]]],
    second: tuple[np.ndarray, dict[int, tuple[str, str]]],
) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
    """The two halves' scores in order, the second half's failures at their own positions."""
    offset = len(first[0])
    failures = {**first[1], **{offset + i: f for i, f in second[1].items()}}
    return np.concatenate([first[0], second[0]]), failures


def chosen_rerankers(config: ProjectConfig, names: Sequence[str] | None) -> list[RerankerConfig]:
    """The named rerankers, or every one in vars.rerankers when none is named."""
    return [config.rerank.reranker(name) for name in names or []] or list(config.rerank.rerankers)


def refresh_reranks(
    settings: ConnectionSettings,
    config: ProjectConfig,
    *,
    dbt_vars: dict | None = None,
    rerankers: Sequence[str] | None = None,
    options: RerankOptions | None = None,
    build_candidates: bool = True,
) -> list[RerankSummary]:
    """Build the stage-1 candidates with dbt, then run every (or the named) reranker."""
    chosen = chosen_rerankers(config, rerankers)
    if not chosen:
        return []
    if build_candidates:
        log.info("dbt: stage-1 candidates")
        run_dbt(
            ["build", "--select", "+int_rerank_candidates"],
            settings,
            config.project_dir,
            dbt_vars=dbt_vars,
        )
    summaries = []
    for reranker in chosen:
        summary = rerank(settings, config, reranker, options)
        log.info("%s", summary.line())
        summaries.append(summary)
    return summaries


EPILOG = """For each reranker in vars.rerankers, score every (query, candidate) pair of
intermediate.int_rerank_candidates (each query's top vars.rerank_candidates
stage-1 neighbours in the pairs it rescores) and write the scores to
embeddings.rerank_scores. Only new or changed pairs are scored (by input_hash);
a killed run resumes where its last committed chunk ended. Pairs that cannot
be scored (a missing image, a NaN score) go to embeddings.rerank_errors.

examples:
  embed-udfs rerank
  embed-udfs rerank --reranker blip --shard 0/2 --device cuda:0
"""

NONE_CONFIGURED = "no rerankers configured: declare them under vars.rerankers in dbt_project.yml"
NEXT = (
    "next: `dbt build` (or `embed-udfs refresh --skip-backfill`) turns them into "
    "metrics.fct_rerank_ranks and metrics.fct_rerank_uplift"
)


@dataclass(frozen=True, kw_only=True)
class RerankJobOptions(JobOptions):
    reranker: Sequence[str] | None = option(
        flag="--reranker", action="append", help="a reranker to run (default all)"
    )
    shard: str | None = option(
        flag="--shard", metavar="I/N", help="score only queries whose product id hashes to I mod N"
    )
    batch_size: int | None = option(
        flag="--batch-size", type=int, help="pairs per forward (default: the reranker's batch_size)"
    )
    chunk_size: int = option(
        4096, flag="--chunk-size", type=int, help="pairs per committed chunk (default 4096)"
    )
    device: str | None = option(
        flag="--device", help="cuda, cuda:N or cpu (default: cuda if available)"
    )
    precision: str = option(
        "auto",
        flag="--precision",
        choices=("auto", "fp32", "fp16", "bf16"),
        help="autocast dtype on CUDA (auto = fp16); CPU always runs fp32",
    )
    dry_run: bool = option(
        False,
        flag="--dry-run",
        action="store_true",
        help="count what would be scored, score nothing",
    )
    build_inputs: bool = option(
        True,
        flag="--no-dbt",
        action="store_false",
        dest="build_inputs",
        help="do not rebuild the candidates first (dbt build --select +int_rerank_candidates)",
    )

    def runner_options(self) -> RerankOptions:
        return RerankOptions(
            batch_size=self.batch_size,
            chunk_size=self.chunk_size,
            device=self.device,
            precision=self.precision,
            shard=Shard.parse(self.shard),
            dry_run=self.dry_run,
        )


class RerankJob(Job):
    """Score each query's stage-1 candidates with every reranker in vars.rerankers."""

    name = "rerank"
    reads = contract.RERANK_CANDIDATES
    writes = contract.RERANK_SCORES
    after = ("backfill",)
    Options = RerankJobOptions
    help = "rescore each query's stage-1 candidates with the rerankers in vars.rerankers"
    epilog = EPILOG

    def check(self, config: ProjectConfig, options: RerankJobOptions) -> None:
        options.runner_options()  # a malformed --shard is refused before any work
        require_scorers(chosen_rerankers(config, options.reranker), "embed-udfs rerank")

    def enabled(self, config: ProjectConfig, options: RerankJobOptions) -> bool:
        # no reranker configured or named: no candidates to build, nothing to score
        return bool(options.reranker or config.rerank.rerankers)

    def written(self, config: ProjectConfig) -> tuple[contract.Relation, ...]:
        return (self.writes.resolve(config), contract.rerank_errors(config))

    def run(
        self, settings: ConnectionSettings, config: ProjectConfig, options: RerankJobOptions
    ) -> JobSummary:
        summaries = refresh_reranks(
            settings,
            config,
            dbt_vars=dict(options.dbt_vars),
            rerankers=options.reranker,
            options=options.runner_options(),
            build_candidates=options.build_inputs,
        )
        if options.dry_run:
            lines = tuple(
                f"{s.reranker}: would score {s.scored} pairs of {s.queries} queries, "
                f"unchanged {s.unchanged}"
                for s in summaries
            )
        else:
            lines = tuple(s.line() for s in summaries)
        footer = (NONE_CONFIGURED,) if not summaries else () if options.dry_run else (NEXT,)
        return JobSummary(self.name, lines, tuple(summaries), footer)
