"""Does the 95% cluster bootstrap interval cover the truth when queries come in clusters?

Each simulated catalog has G clusters of queries (sizes 1..2m-1, mean m) whose hit
probabilities are drawn from Beta(mu * s, (1 - mu) * s); a query hits with its cluster's
probability. The intra-cluster correlation of the 0/1 scores is 1 / (s + 1), so s = 1
gives ICC 0.5, and the true mean over queries is mu. For every catalog this prints how
often the interval the project publishes covers mu:

- cluster: the estimate +/- 1.96 standard deviations of B cluster Poisson bootstrap
  replicates (every query of a cluster shares one Poisson(1) weight; the weighted mean per
  replicate), clipped to [0, 1] and never narrower than Wilson's (macro summarise_scores);
- independent: the Wilson interval, which treats every query as independent (the
  `ci_low_independent` / `ci_high_independent` columns);

and, with several sections of equal true mean, how often the evidence rule (one-sided
section-vs-ALL p-value from the paired cluster bootstrap, read on the section's clusters -
1 degrees of freedom, Holm over the sections) flags any section as weaker than ALL: it
should stay under 5% of catalogs, where uncorrected tests flag one in most catalogs.

The draws here are numpy's Poisson(1), not the SQL's md5 draws: the same bootstrap
definition (tests/python/test_cluster_intervals.py checks SQL = numpy on md5 draws).

Usage: .venv/bin/python bench/interval_calibration.py [--catalogs 2000] [--clusters 80]
About 10 s per 1,000 catalogs on 2 cores. tests/python/test_interval_calibration.py runs
a small seeded version.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass

import numpy as np

Z = 1.959963984540054


@dataclass(frozen=True)
class Coverage:
    catalogs: int
    queries_mean: float
    icc: float
    cluster: float
    independent: float
    cluster_width: float
    independent_width: float


def wilson(hits: float, n: int) -> tuple[float, float]:
    p = hits / n
    centre = p + Z * Z / (2 * n)
    spread = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - spread) / (1 + Z * Z / n), (centre + spread) / (1 + Z * Z / n)


def _catalog(
    rng: np.random.Generator, clusters: int, size: int, mu: float, s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, cluster index per query)."""
    sizes = rng.integers(1, 2 * size, size=clusters)
    p = rng.beta(mu * s, (1 - mu) * s, size=clusters)
    members = np.repeat(np.arange(clusters), sizes)
    return (rng.random(len(members)) < p[members]).astype(np.float64), members


def cluster_replicates(scores: np.ndarray, members: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted means under cluster weights (clusters x B), one per replicate."""
    row_weights = weights[members]
    totals = row_weights.sum(axis=0)
    sums = (row_weights * scores[:, None]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, sums / totals, np.nan)


def cluster_interval(
    scores: np.ndarray, members: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    value = float(scores.mean())
    se = float(np.nanstd(cluster_replicates(scores, members, weights), ddof=1))
    low, high = wilson(scores.sum(), len(scores))
    return min(low, max(0.0, value - Z * se)), max(high, min(1.0, value + Z * se))


def coverage(
    catalogs: int,
    seed: int = 0,
    clusters: int = 80,
    size: int = 5,
    mu: float = 0.6,
    icc: float = 0.5,
    replicates: int = 200,
) -> Coverage:
    rng = np.random.default_rng(seed)
    s = 1 / icc - 1
    covered = [0, 0]
    widths = [0.0, 0.0]
    queries = 0
    for _ in range(catalogs):
        scores, members = _catalog(rng, clusters, size, mu, s)
        queries += len(scores)
        weights = rng.poisson(1.0, size=(clusters, replicates)).astype(np.float64)
        for i, (low, high) in enumerate(
            (cluster_interval(scores, members, weights), wilson(scores.sum(), len(scores)))
        ):
            covered[i] += low <= mu <= high
            widths[i] += high - low
    return Coverage(
        catalogs,
        queries / catalogs,
        icc,
        covered[0] / catalogs,
        covered[1] / catalogs,
        widths[0] / catalogs,
        widths[1] / catalogs,
    )


def weaker_p(difference: float, se: float, clusters: int) -> float:
    """One-sided p-value of "not below ALL" as macros/evidence.sql computes it: the standard
    error scaled by sqrt(G / (G - 1)), the t statistic read on G - 1 degrees of freedom
    through z = t (1 - 1/(4 df)) / sqrt(1 + t^2 / (2 df))."""
    if clusters < 2:
        return 1.0
    if se > 0:
        t = difference / (se * math.sqrt(clusters / (clusters - 1)))
        df = clusters - 1
        z = t * (1 - 1 / (4 * df)) / math.sqrt(1 + t * t / (2 * df))
        return 0.5 * math.erfc(-z / math.sqrt(2))
    return 0.0 if difference < 0 else 1.0


def holm(p: np.ndarray) -> np.ndarray:
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def false_flags(
    catalogs: int,
    seed: int = 0,
    sections: int = 12,
    clusters_per_section: int = 15,
    size: int = 5,
    mu: float = 0.6,
    icc: float = 0.5,
    replicates: int = 200,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Share of catalogs (all sections equal) where any section is flagged weaker than ALL:
    (with Holm, without any correction)."""
    rng = np.random.default_rng(seed)
    s = 1 / icc - 1
    flagged = [0, 0]
    for _ in range(catalogs):
        scores, members = _catalog(rng, sections * clusters_per_section, size, mu, s)
        section_of = members % sections  # clusters are dealt to sections in turn
        weights = rng.poisson(1.0, size=(sections * clusters_per_section, replicates))
        weights = weights.astype(np.float64)
        overall = cluster_replicates(scores, members, weights)
        p = np.empty(sections)
        for j in range(sections):
            rows = section_of == j
            reps = cluster_replicates(scores[rows], members[rows], weights)
            difference = scores[rows].mean() - scores.mean()
            se = float(np.nanstd(reps - overall, ddof=1))
            p[j] = weaker_p(difference, se, len(np.unique(members[rows])))
        flagged[0] += bool((holm(p) < alpha).any())
        flagged[1] += bool((p < alpha).any())
    return flagged[0] / catalogs, flagged[1] / catalogs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--catalogs", type=int, default=2000)
    parser.add_argument("--clusters", type=int, default=80)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(
        "| ICC | clusters | mean queries | cluster covers | independent covers "
        "| cluster width | independent width | s |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for icc in (0.0001, 0.1, 0.5):
        for clusters in (30, args.clusters):
            start = time.perf_counter()
            c = coverage(args.catalogs, args.seed, clusters=clusters, icc=icc)
            print(
                f"| {icc:g} | {clusters} | {c.queries_mean:.0f} | {c.cluster:.3f} "
                f"| {c.independent:.3f} | {c.cluster_width:.3f} | {c.independent_width:.3f} "
                f"| {time.perf_counter() - start:.1f} |"
            )
    holm_rate, raw_rate = false_flags(args.catalogs // 2, args.seed)
    print(
        f"\nall 12 sections equal (ICC 0.5, 15 clusters of about 5 each): any section flagged "
        f"in {holm_rate:.3f} of catalogs with Holm, {raw_rate:.3f} without correction"
    )


if __name__ == "__main__":
    main()
