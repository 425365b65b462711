"""Print the demo's cross-modal figures from the database after `make demo`.

Per pair and direction, ALL and the three weakest sections by R@10: R@1, R@10 and
MRR@50 with their 95% intervals (metrics.fct_retrieval_metrics) and the cosine gap
(metrics.fct_embedding_gaps, with a normal interval over per-query gaps computed here
from the eval vectors). Then, per pair and direction, what the top-10 lists look like
(hubness, share of neighbours in the query's own section) and the rotation null band:
R@10 under 200 uniformly random changes of basis of the gallery side, i.e. what a pair
whose towers share no basis scores; its mean is chance (10/N) whatever the towers are.
Last, the rerank uplift and the label figures of the CLIP text spaces.

Usage: .venv/bin/python bench/demo_figures.py [--rotations 200]
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import numpy as np
import psycopg

from embed_udfs.config import find_project_dir
from embed_udfs.db import connection, resolve_settings

CLIP_TEXT_SPACES = ("clip_text", "clip_text_prompted", "clip_text_clean", "sigmoid_text")


def _fmt(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def retrieval(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        """
        select pair, direction, section, metric, value, ci_low, ci_high, n
        from metrics.fct_retrieval_metrics
        where metric in ('recall_at_1', 'recall_at_10', 'mrr_at_50')
        """
    ).fetchall()
    figures: dict[tuple[str, str, str], dict[str, tuple[float, float, float, int]]] = {}
    for pair, direction, section, metric, value, low, high, n in rows:
        figures.setdefault((pair, direction, section), {})[metric] = (value, low, high, n)
    gaps = dict(
        conn.execute(
            "select pair || '|' || section, value from metrics.fct_embedding_gaps"
            " where metric = 'cosine_gap'"
        ).fetchall()
    )
    print("pair / direction / section: n, R@1, R@10, MRR@50 (95% intervals), cosine gap")
    for pair, direction in sorted({(p, d) for p, d, _ in figures}):
        sections = [s for p, d, s in figures if (p, d) == (pair, direction) and s != "ALL"]
        weakest = sorted(sections, key=lambda s: figures[(pair, direction, s)]["recall_at_10"][0])
        n_all = figures[(pair, direction, "ALL")]["recall_at_10"][3]
        print(f"{pair} {direction} (chance R@10 = 10/N = {10 / n_all:.4f})")
        for section in ["ALL", *weakest[:3]]:
            f = figures[(pair, direction, section)]
            r1, r10, mrr = f["recall_at_1"], f["recall_at_10"], f["mrr_at_50"]
            gap = gaps.get(f"{pair}|{section}")
            print(
                f"  {section:<12} n={r10[3]:>5}  R@1 {_fmt(*r1[:3])}  R@10 {_fmt(*r10[:3])}"
                f"  MRR@50 {_fmt(*mrr[:3])}  gap {_fmt(gap)}"
            )


def _pair_vectors(
    conn: psycopg.Connection, text_space: str, image_space: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rows = conn.execute(
        """
        select t.product_id, coalesce(t.collection_section, 'unknown'),
               t.embedding::real[], i.embedding::real[]
        from intermediate.int_eval_vectors as t
        inner join intermediate.int_eval_vectors as i
            on i.product_id = t.product_id and i.space = %s
        where t.space = %s
        order by t.product_id
        """,
        (image_space, text_space),
    ).fetchall()
    texts = np.array([r[2] for r in rows], dtype=np.float64)
    images = np.array([r[3] for r in rows], dtype=np.float64)
    return texts, images, [r[1] for r in rows]


def _recall_at_10(queries: np.ndarray, gallery: np.ndarray) -> float:
    similarity = queries @ gallery.T
    rank = 1 + (similarity > np.diag(similarity)[:, None]).sum(axis=1)
    return float((rank <= 10).mean())


def _haar(dim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def structure(conn: psycopg.Connection, rotations: int) -> None:
    pairs = conn.execute(
        "select pair, text_space, image_space from metrics.dim_retrieval_pairs order by pair"
    ).fetchall()
    print()
    print(
        "top-10 lists and the rotation null band (R@10 when the gallery side gets a random"
        " basis; mean = chance for any towers)"
    )
    for pair, text_space, image_space in pairs:
        texts, images, sections = _pair_vectors(conn, text_space, image_space)
        n = len(sections)
        per_query_gap = np.diag(texts @ images.T) - (
            (texts @ images.sum(axis=0) - np.einsum("ij,ij->i", texts, images)) / (n - 1)
        )
        half = 1.96 * per_query_gap.std(ddof=1) / math.sqrt(n)
        print(
            f"{pair}: N={n}, cosine gap {per_query_gap.mean():.3f}"
            f" [{per_query_gap.mean() - half:.3f}, {per_query_gap.mean() + half:.3f}]"
        )
        share = Counter(sections)
        for direction, queries, gallery in (
            ("text_to_image", texts, images),
            ("image_to_text", images, texts),
        ):
            neighbours = conn.execute(
                """
                select query_product_id, neighbour_product_id, neighbour_section,
                       coalesce(collection_section, 'unknown')
                from intermediate.int_retrieval_neighbours
                where pair = %s and direction = %s and neighbour_rank <= 10
                """,
                (pair, direction),
            ).fetchall()
            counts = Counter(r[1] for r in neighbours)
            top = counts.most_common(10)
            own = sum((r[2] or "unknown") == r[3] for r in neighbours) / max(len(neighbours), 1)
            expected_own = sum((c / n) ** 2 for c in share.values())
            rng = np.random.default_rng(0)
            null = np.array(
                [
                    _recall_at_10(queries, gallery @ _haar(gallery.shape[1], rng))
                    for _ in range(rotations)
                ]
            )
            low, high = np.quantile(null, [0.025, 0.975])
            print(
                f"  {direction}: {len(counts)} distinct items fill the top-10 lists;"
                f" the most frequent is in {top[0][1] if top else 0} lists, the ten most"
                f" frequent hold {sum(c for _, c in top) / max(len(neighbours), 1):.2f} of"
                f" the slots; own-section share {own:.2f} (label-blind {expected_own:.2f})"
            )
            print(
                f"    R@10 {_recall_at_10(queries, gallery):.4f}; rotation null: mean"
                f" {null.mean():.4f} (chance {10 / n:.4f}), 95% band [{low:.4f}, {high:.4f}],"
                f" sd {null.std():.4f} against a binomial sd of"
                f" {math.sqrt(10 / n * (1 - 10 / n) / n):.4f}"
            )


def rerank_and_labels(conn: psycopg.Connection) -> None:
    print()
    print("rerank uplift (ALL): before -> after = difference [95% interval]")
    for row in conn.execute(
        """
        select reranker, pair, direction, metric, before, after, difference, ci_low, ci_high, n
        from metrics.fct_rerank_uplift
        where section = 'ALL' order by reranker, pair, direction, metric
        """
    ).fetchall():
        reranker, pair, direction, metric, before, after, diff, low, high, n = row
        print(
            f"  {reranker} on {pair} {direction} {metric}: {before:.3f} -> {after:.3f}"
            f" = {diff:+.3f} [{low:+.3f}, {high:+.3f}] (n {n})"
        )
    print()
    print("label metrics (ALL, reduction none / pca_64 for ARI)")
    for row in conn.execute(
        """
        select space, metric, reduction, value, ci_low, ci_high, n
        from metrics.fct_label_metrics
        where section = 'ALL'
          and (metric, reduction) in (('nn1_accuracy', 'none'), ('kmeans_ari', 'pca_64'),
                                      ('silhouette_cosine', 'none'))
        order by metric, value desc
        """
    ).fetchall():
        space, metric, reduction, value, low, high, n = row
        print(f"  {space:<28} {metric:<18} {reduction:<7} {_fmt(value, low, high)}  n {n}")
    print()
    print("space comparisons among the CLIP text spaces (ALL, nn1_accuracy / kmeans_ari pca_64)")
    for row in conn.execute(
        """
        select metric, space_a, space_b, difference, ci_low, ci_high, a_beats_b
        from metrics.fct_space_comparisons
        where section = 'ALL' and space_a = any(%s) and space_b = any(%s) and space_a < space_b
          and (metric, reduction) in (('nn1_accuracy', 'none'), ('kmeans_ari', 'pca_64'))
        order by metric, space_a, space_b
        """,
        (list(CLIP_TEXT_SPACES), list(CLIP_TEXT_SPACES)),
    ).fetchall():
        metric, a, b, diff, low, high, verdict = row
        print(f"  {metric:<13} {a} - {b}: {diff:+.3f} [{low:+.3f}, {high:+.3f}]: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rotations", type=int, default=200)
    args = parser.parse_args()
    settings = resolve_settings(find_project_dir(Path(__file__).parent))
    with connection(settings) as conn:
        retrieval(conn)
        structure(conn, args.rotations)
        rerank_and_labels(conn)


if __name__ == "__main__":
    main()
