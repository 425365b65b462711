"""Known-answer tests of the label-structure metrics (1-NN, silhouette, PCA +
KMeans ARI/NMI, bootstrap intervals and space comparisons) on the real
database, each checked against scikit-learn or numpy on the same rows."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import (
    PROJECT_DIR,
    config_for,
    dbt_build,
    plant,
    planted_config,
    planted_space,
    query,
)
from reference import unit, wilson
from sklearn.metrics import (
    adjusted_rand_score,
    normalized_mutual_info_score,
    silhouette_samples,
)

from embed_udfs.db import connection
from embed_udfs.dbt_runner import run_dbt
from embed_udfs.errors import ClusterError, DbtError
from embed_udfs.jobs.cluster import cluster_spaces, plan_reductions

SECTIONS = ["bags", "shoes", "lamps", "toys", "books"]
# skewed: bags hold 160 of the 300 labelled products (53%), the rest 35 each
PER_SECTION = {"bags": 160, "shoes": 35, "lamps": 35, "toys": 35, "books": 35}
LABELLED = sum(PER_SECTION.values())
UNLABELLED = 7
DIM = 16
SEEDS = [0, 1, 2]
REPLICATES = 60
SPACES = ["separated", "noisy", "shuffled"]
LABEL_MODELS = ("+fct_label_metrics", "+fct_space_comparisons", "+fct_label_confusions")

Z = 1.959963984540054


def _vars(**overrides) -> dict:
    return planted_config(
        [planted_space(name, "text", DIM) for name in SPACES],
        [],
        retrieval_search="exact",
        label_pca_dims=[8, 64, "none"],
        label_kmeans_seeds=SEEDS,
        bootstrap_replicates=REPLICATES,
        **overrides,
    )


def _planted(
    rng: np.random.Generator,
) -> tuple[list[tuple[str, str | None]], dict[str, np.ndarray]]:
    """Three spaces over the same products: sections far apart, sections that
    overlap, and clusters that ignore the sections (labels shuffled)."""
    sections = np.repeat(SECTIONS, [PER_SECTION[s] for s in SECTIONS])
    products = [(f"P{i:04d}", str(s)) for i, s in enumerate(sections)]
    index = np.array([SECTIONS.index(s) for s in sections])
    centres = np.eye(DIM)[: len(SECTIONS)] * 10
    separated = centres[index] + rng.normal(size=(len(index), DIM))
    noisy_centres = rng.normal(size=(len(SECTIONS), DIM)) * 0.6
    noisy = noisy_centres[index] + rng.normal(size=(len(index), DIM))
    shuffled = centres[rng.permutation(index)] + rng.normal(size=(len(index), DIM))
    # products without a section: in the eval sample, not in the label sample
    products += [(f"U{i:04d}", None) for i in range(UNLABELLED)]
    extra = rng.normal(size=(UNLABELLED, DIM))
    spaces = {"separated": separated, "noisy": noisy, "shuffled": shuffled}
    return products, {name: np.vstack([x, extra]) for name, x in spaces.items()}


@pytest.fixture(scope="module")
def labelled(db, tmp_path_factory):
    dbt_vars = _vars()
    config = config_for(dbt_vars)
    products, vectors = _planted(np.random.default_rng(5))
    plant(db, config, products, vectors)
    target = tmp_path_factory.mktemp("labels")
    dbt_build(db, dbt_vars, target, "+int_label_vectors")
    # fct_label_metrics is tested against the thresholds in force (`dbt seed` and
    # `dbt run` run no tests)
    for command in (
        ["seed", "--select", "metric_thresholds"],
        ["run", "--select", "+dim_metric_thresholds"],
    ):
        run_dbt(
            command,
            db,
            PROJECT_DIR,
            dbt_vars=dbt_vars,
            target_path=target / "target",
            quiet=True,
        )
    summaries = cluster_spaces(db, config)
    dbt_build(db, dbt_vars, target, *LABEL_MODELS)
    return {"vars": dbt_vars, "config": config, "summaries": summaries, "target": target}


def _sample(db, space: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    rows = query(
        db,
        "select product_id, collection_section, embedding::real[] "
        "from intermediate.int_label_vectors where space = %s order by product_id",
        (space,),
    )
    ids = [r[0] for r in rows]
    return ids, np.array([r[1] for r in rows]), np.array([r[2] for r in rows], dtype=np.float64)


def _metric(db, space: str, metric: str, section: str = "ALL", reduction: str = "none") -> dict:
    rows = query(
        db,
        "select value, n, hits, ci_low, ci_high, interval_method, standard_error, n_seeds, "
        "seed_stddev, is_negative_silhouette, weakness_rank, ci_low_independent, "
        "ci_high_independent, interval_method_independent from metrics.fct_label_metrics "
        "where space = %s and metric = %s and section = %s and reduction = %s",
        (space, metric, section, reduction),
    )
    assert len(rows) == 1, (space, metric, section, reduction, rows)
    keys = "value n hits ci_low ci_high interval_method standard_error n_seeds seed_stddev "
    keys += "is_negative_silhouette weakness_rank ci_low_independent ci_high_independent "
    keys += "interval_method_independent"
    return dict(zip(keys.split(), rows[0], strict=True))


def _assignments(db, space: str, reduction: str, seed: int) -> dict[str, int]:
    return dict(
        query(
            db,
            "select product_id, cluster from embeddings.cluster_assignments "
            "where space = %s and reduction = %s and seed = %s",
            (space, reduction, seed),
        )
    )


def _weights(db) -> dict[str, np.ndarray]:
    rows = query(db, "select product_id, weights::real[] from intermediate.int_bootstrap_weights")
    return {product_id: np.array(w, dtype=np.int64) for product_id, w in rows}


def test_planted_clusters_score_perfectly(db, labelled):
    for reduction in ("pca_8", "none"):
        for metric in ("kmeans_ari", "kmeans_nmi"):
            value = _metric(db, "separated", metric, reduction=reduction)["value"]
            assert value == pytest.approx(1.0, abs=1e-12)
    nn = _metric(db, "separated", "nn1_accuracy")
    assert nn["value"] == 1.0 and nn["hits"] == nn["n"] == LABELLED
    assert _metric(db, "separated", "silhouette_cosine")["value"] > 0.5


def test_shuffled_labels_score_at_chance(db, labelled):
    for reduction in ("pca_8", "none"):
        ari = _metric(db, "shuffled", "kmeans_ari", reduction=reduction)
        assert abs(ari["value"]) < 0.03
        assert ari["ci_low"] < 0 < ari["ci_high"] or abs(ari["value"]) < 0.01
    nn = _metric(db, "shuffled", "nn1_accuracy")
    shares = np.array(list(PER_SECTION.values())) / LABELLED
    assert abs(nn["value"] - (shares**2).sum()) < 0.1


def test_products_without_a_section_are_left_out(db, labelled):
    sampled = query(db, "select count(*) from intermediate.int_label_sample")[0][0]
    assert sampled == LABELLED + UNLABELLED
    for space in SPACES:
        ids, sections, _ = _sample(db, space)
        assert len(ids) == LABELLED and set(sections) == set(SECTIONS)
    sections = {s for (s,) in query(db, "select distinct section from metrics.fct_label_metrics")}
    assert sections == {*SECTIONS, "ALL"}


def test_pca_sizes_at_or_above_the_space_dim_are_skipped(db, labelled):
    reductions = {
        r for (r,) in query(db, "select distinct reduction from metrics.fct_label_metrics")
    }
    assert reductions == {"none", "pca_8"}
    assert all("pca_64" in " ".join(s.skipped) for s in labelled["summaries"])
    assert plan_reductions(384, 1000, [64, 384, None])[0][0].name == "pca_64"
    assert [r.name for r in plan_reductions(384, 50, [64, None])[0]] == ["none"]


def test_silhouettes_match_sklearn(db, labelled):
    for space in SPACES:
        ids, sections, vectors = _sample(db, space)
        expected = silhouette_samples(vectors, sections, metric="cosine")
        got = dict(
            query(
                db,
                "select product_id, silhouette from intermediate.int_label_silhouettes "
                "where space = %s",
                (space,),
            )
        )
        np.testing.assert_allclose([got[i] for i in ids], expected, atol=2e-6)
        for section in [*SECTIONS, "ALL"]:
            members = sections == section if section != "ALL" else np.ones(len(ids), bool)
            row = _metric(db, space, "silhouette_cosine", section)
            assert row["value"] == pytest.approx(expected[members].mean(), abs=2e-6)
            assert row["is_negative_silhouette"] == (row["value"] < 0)


def test_negative_silhouette_is_flagged_and_sections_rank_within_a_space(db, labelled):
    flagged = query(
        db,
        "select space, section from metrics.fct_label_metrics "
        "where metric = 'silhouette_cosine' and is_negative_silhouette",
    )
    assert {space for space, _ in flagged} == {"shuffled"}
    rows = query(
        db,
        "select space, metric, reduction, value, ci_high, weakness_rank, is_weaker_than_all, "
        "weaker_p_holm from metrics.fct_label_metrics "
        "where section <> 'ALL' order by space, metric, reduction, weakness_rank",
    )
    groups: dict[tuple, list] = {}
    for space, metric, reduction, value, high, rank, weaker, p_holm in rows:
        key = (
            not weaker,
            p_holm if p_holm is not None else 2.0,
            high if high is not None else value,
        )
        groups.setdefault((space, metric, reduction), []).append((rank, key))
    for ranked in groups.values():
        assert [r for r, _ in ranked] == list(range(1, len(ranked) + 1))
        # weakest first on evidence (flagged, then the adjusted p-value), then by the
        # upper 95% bound, so a small section's noise does not lead
        keys = [key for _, key in ranked]
        assert keys == sorted(keys)


def test_nn1_matches_brute_force_numpy(db, labelled):
    for space in SPACES:
        ids, sections, vectors = _sample(db, space)
        sims = unit(vectors) @ unit(vectors).T
        np.fill_diagonal(sims, -np.inf)
        nearest = sims.argmax(axis=1)
        got = {
            r[0]: r[1:]
            for r in query(
                db,
                "select product_id, neighbour_product_id, neighbour_distance, is_same_section "
                "from intermediate.int_label_neighbours where space = %s",
                (space,),
            )
        }
        position = {product_id: i for i, product_id in enumerate(ids)}
        hits = 0
        for i, product_id in enumerate(ids):
            neighbour, distance, same = got[product_id]
            # the same neighbour, or one tied with it to float32 precision
            assert sims[i, position[neighbour]] == pytest.approx(sims[i, nearest[i]], abs=1e-6)
            assert 1 - distance == pytest.approx(sims[i, nearest[i]], abs=1e-6)
            assert same == (sections[position[neighbour]] == sections[i])
            hits += sections[nearest[i]] == sections[i]
        row = _metric(db, space, "nn1_accuracy")
        assert (row["hits"], row["n"]) == (hits, len(ids))
        independent = wilson(hits, len(ids))
        assert (row["ci_low_independent"], row["ci_high_independent"]) == pytest.approx(
            independent, abs=1e-12
        )
        assert row["interval_method_independent"] == "wilson"
        # the cluster interval is never narrower than the independent one
        assert row["ci_low"] <= independent[0] + 1e-12
        assert row["ci_high"] >= independent[1] - 1e-12
        assert row["interval_method"].startswith("cluster bootstrap (duplicate_group)")


def test_nn1_chance_level_majority_share_and_kappa_match_numpy(db, labelled):
    """On the skewed sample: the chance level is the sum of squared section
    shares (a section's: its share), the majority share the largest share,
    and kappa (accuracy - chance) / (1 - chance), all from the rows' own sections."""
    for space in SPACES:
        ids, sections, vectors = _sample(db, space)
        names, counts = np.unique(sections, return_counts=True)
        shares = counts / counts.sum()
        sims = unit(vectors) @ unit(vectors).T
        np.fill_diagonal(sims, -np.inf)
        hit = sections[sims.argmax(axis=1)] == sections
        rows = query(
            db,
            "select section, value, chance_level, majority_share, majority_section, kappa "
            "from metrics.fct_label_metrics where space = %s and metric = 'nn1_accuracy'",
            (space,),
        )
        assert len(rows) == len(names) + 1
        for section, value, chance, majority, majority_section, kappa in rows:
            members = sections == section if section != "ALL" else np.ones(len(ids), bool)
            expected_chance = (
                (shares**2).sum() if section == "ALL" else shares[list(names).index(section)]
            )
            accuracy = hit[members].mean()
            assert value == pytest.approx(accuracy, abs=1e-12)
            assert chance == pytest.approx(expected_chance, abs=1e-12)
            assert majority == pytest.approx(shares.max(), abs=1e-12)
            assert majority_section == names[shares.argmax()] == "bags"
            assert kappa == pytest.approx(
                (accuracy - expected_chance) / (1 - expected_chance), abs=1e-12
            )
    # the planted skew: bags are 160 of 300, so chance is well above 1/5
    chance = _metric_chance(db, "separated")
    assert chance == pytest.approx((160**2 + 4 * 35**2) / 300**2, abs=1e-12)


def _metric_chance(db, space: str) -> float:
    return query(
        db,
        "select chance_level from metrics.fct_label_metrics "
        "where space = %s and metric = 'nn1_accuracy' and section = 'ALL'",
        (space,),
    )[0][0]


def test_hnsw_nn1_agrees_with_exact(db, labelled, tmp_path):
    exact = dict(
        query(
            db, "select space || product_id, is_same_section from intermediate.int_label_neighbours"
        )
    )
    dbt_build(
        db, {**labelled["vars"], "retrieval_search": "hnsw"}, tmp_path, "int_label_neighbours"
    )
    approximate = dict(
        query(
            db, "select space || product_id, is_same_section from intermediate.int_label_neighbours"
        )
    )
    agree = sum(exact[k] == approximate[k] for k in exact)
    assert agree >= 0.99 * len(exact)
    dbt_build(db, labelled["vars"], tmp_path, "int_label_neighbours")


def test_exact_nn1_never_answers_from_the_index(db, labelled):
    """An HNSW scan returns at most ef_search rows, so an exact search that the
    planner let the index serve (an index scan under an incremental sort on
    distance, product_id) would be approximate. With index scans preferred and
    ef_search at 2, the compiled exact search still plans no index and equals
    numpy's brute force."""
    models = labelled["target"] / "target" / "compiled" / "embed_metrics" / "models"
    compiled = (models / "labels" / "intermediate" / "int_label_neighbours.sql").read_text()
    with connection(db) as conn:
        conn.execute("set enable_seqscan = off")
        conn.execute("set hnsw.ef_search = 2")
        plan = "\n".join(row[0] for row in conn.execute("explain " + compiled))
        assert "Index Scan" not in plan, plan
        rows = conn.execute(
            f"select space, product_id, neighbour_distance from ({compiled}) as neighbours"
        ).fetchall()
    got = {(space, product_id): distance for space, product_id, distance in rows}
    for space in SPACES:
        ids, _, vectors = _sample(db, space)
        sims = unit(vectors) @ unit(vectors).T
        np.fill_diagonal(sims, -np.inf)
        distances = np.array([got[space, i] for i in ids])
        np.testing.assert_allclose(1 - distances, sims.max(axis=1), atol=1e-6)


def test_label_figures_do_not_depend_on_row_order(db, labelled, tmp_path):
    """pgvector sums vectors in single precision, so a sum's last bits follow
    the order of its rows. Every sum behind the silhouettes and the bootstrap
    runs in product_id order (the chance level's sum in section order): the
    label sample stored in reverse order gives bit-identical figures."""

    def figures() -> list[tuple]:
        return query(
            db,
            "select space, metric, reduction, section, value::text, standard_error::text, "
            "chance_level::text, kappa::text "
            "from metrics.fct_label_metrics where metric in ('silhouette_cosine', 'nn1_accuracy') "
            "order by 1, 2, 3, 4",
        )

    before = figures()
    with connection(db) as conn:
        conn.execute(
            "create temp table reversed as select * from intermediate.int_label_vectors "
            "order by product_id desc, space desc"
        )
        conn.execute("truncate intermediate.int_label_vectors")
        conn.execute("insert into intermediate.int_label_vectors select * from reversed")
        conn.commit()
    models = ["int_label_neighbours", "int_label_silhouettes", "int_label_replicates"]
    dbt_build(db, labelled["vars"], tmp_path, *models, "fct_label_metrics")
    assert figures() == before


def test_ari_and_nmi_match_sklearn_per_run(db, labelled):
    scores = {
        (r[0], r[1], r[2]): r[3:]
        for r in query(
            db,
            "select space, reduction, seed, ari, nmi from intermediate.int_kmeans_scores "
            "where replicate = 0",
        )
    }
    checked_middle = False
    for space in SPACES:
        ids, sections, _ = _sample(db, space)
        for reduction in ("pca_8", "none"):
            aris, nmis = [], []
            for seed in SEEDS:
                clusters = _assignments(db, space, reduction, seed)
                labels = [clusters[i] for i in ids]
                ari = adjusted_rand_score(sections, labels)
                nmi = normalized_mutual_info_score(sections, labels)
                assert scores[space, reduction, seed] == pytest.approx((ari, nmi), abs=1e-12)
                aris.append(ari)
                nmis.append(nmi)
                checked_middle |= 0.1 < ari < 0.9
            for metric, values in (("kmeans_ari", aris), ("kmeans_nmi", nmis)):
                row = _metric(db, space, metric, reduction=reduction)
                assert row["value"] == pytest.approx(np.mean(values), abs=1e-12)
                assert row["n_seeds"] == len(SEEDS)
                assert row["seed_stddev"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert checked_middle, "no run with an ARI strictly between 0 and 1: the check is too easy"


def test_bootstrap_replicates_equal_sklearn_on_resampled_rows(db, labelled):
    weights = _weights(db)
    assert all(len(w) == REPLICATES for w in weights.values())
    space, reduction, seed = "noisy", "pca_8", SEEDS[0]
    ids, sections, vectors = _sample(db, space)
    clusters = _assignments(db, space, reduction, seed)
    labels = np.array([clusters[i] for i in ids])
    sils = silhouette_samples(vectors, sections, metric="cosine")
    neighbours = dict(
        query(
            db,
            "select product_id, is_same_section from intermediate.int_label_neighbours "
            "where space = %s",
            (space,),
        )
    )
    hits = np.array([neighbours[i] for i in ids], dtype=float)
    for replicate in (1, 2, REPLICATES):
        w = np.array([weights[i][replicate - 1] for i in ids])
        ari, nmi = query(
            db,
            "select ari, nmi from intermediate.int_kmeans_scores "
            "where space = %s and reduction = %s and seed = %s and replicate = %s",
            (space, reduction, seed, replicate),
        )[0]
        resampled = np.repeat(sections, w), np.repeat(labels, w)
        assert ari == pytest.approx(adjusted_rand_score(*resampled), abs=1e-12)
        assert nmi == pytest.approx(normalized_mutual_info_score(*resampled), abs=1e-12)
        replicated = dict(
            query(
                db,
                "select metric, value from intermediate.int_label_replicates "
                "where space = %s and section = 'ALL' and replicate = %s "
                "and metric in ('nn1_accuracy', 'silhouette_cosine')",
                (space, replicate),
            )
        )
        assert replicated["nn1_accuracy"] == pytest.approx(np.average(hits, weights=w), abs=1e-6)
        assert replicated["silhouette_cosine"] == pytest.approx(
            np.average(sils, weights=w), abs=1e-5
        )


def test_bootstrap_intervals_are_value_plus_minus_replicate_spread(db, labelled):
    rows = query(
        db,
        "select space, metric, reduction, section, value from intermediate.int_label_replicates "
        "where replicate > 0 and metric in ('silhouette_cosine', 'kmeans_ari')",
    )
    replicates: dict[tuple, list[float]] = {}
    for *key, value in rows:
        replicates.setdefault(tuple(key), []).append(value)
    for (space, metric, reduction, section), values in replicates.items():
        row = _metric(db, space, metric, section, reduction)
        se = np.std(values, ddof=1)
        assert row["standard_error"] == pytest.approx(se, abs=1e-9)
        low, high = row["value"] - Z * se, row["value"] + Z * se
        assert row["ci_low"] == pytest.approx(max(low, -1), abs=1e-9)
        assert row["ci_high"] == pytest.approx(min(high, 1), abs=1e-9)
        assert row["interval_method"] == (
            f"cluster bootstrap (duplicate_group), {REPLICATES} replicates, se"
        )


def test_bootstrap_weights_are_poisson_and_deterministic(db, labelled, tmp_path):
    weights = np.stack(list(_weights(db).values()))
    assert weights.shape == (LABELLED, REPLICATES)
    assert weights.mean() == pytest.approx(1, abs=0.03)
    assert weights.var() == pytest.approx(1, abs=0.06)
    assert (weights == 0).mean() == pytest.approx(np.exp(-1), abs=0.02)
    before = _weights(db)
    dbt_build(db, labelled["vars"], tmp_path, "int_bootstrap_weights")
    after = _weights(db)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_kmeans_is_deterministic_given_the_seeds(db, labelled):
    before = query(db, "select * from embeddings.cluster_assignments order by 1, 2, 4, 5")
    runs_before = query(db, "select space, reduction, seed, inertia from embeddings.cluster_runs")
    cluster_spaces(db, labelled["config"], ["noisy"])
    assert query(db, "select * from embeddings.cluster_assignments order by 1, 2, 4, 5") == before
    runs_after = query(db, "select space, reduction, seed, inertia from embeddings.cluster_runs")
    assert sorted(runs_after) == sorted(runs_before)


def test_comparisons_separate_structure_from_shuffled_labels(db, labelled):
    rows = {
        (r[0], r[1], r[2], r[3]): r[4:]
        for r in query(
            db,
            "select metric, reduction, space_a, space_b, a_beats_b, better_space, difference, "
            "ci_low, ci_high from metrics.fct_space_comparisons where section = 'ALL'",
        )
    }
    for metric, reduction in [
        ("nn1_accuracy", "none"),
        ("kmeans_ari", "pca_8"),
        ("kmeans_ari", "none"),
        ("kmeans_nmi", "none"),
    ]:
        verdict, better, *_ = rows[metric, reduction, "separated", "shuffled"]
        assert (verdict, better) == ("yes", "separated")
        verdict, better, *_ = rows[metric, reduction, "shuffled", "separated"]
        assert (verdict, better) == ("no", "separated")
    assert not any(metric == "silhouette_cosine" for metric, *_ in rows)
    # the interval is the paired replicate differences' spread around the difference
    paired = query(
        db,
        "select a.value - b.value from intermediate.int_label_replicates as a "
        "inner join intermediate.int_label_replicates as b using (metric, reduction, section, "
        "replicate) where a.space = 'noisy' and b.space = 'shuffled' and a.metric = "
        "'nn1_accuracy' and a.section = 'ALL' and a.replicate > 0",
    )
    se = np.std([d for (d,) in paired], ddof=1)
    _, _, difference, low, high = rows["nn1_accuracy", "none", "noisy", "shuffled"]
    assert (low, high) == pytest.approx((difference - Z * se, difference + Z * se), abs=1e-9)


def test_confusions_count_cross_section_neighbours(db, labelled):
    neighbours = query(
        db,
        "select collection_section, neighbour_section from intermediate.int_label_neighbours "
        "where space = 'noisy' and not is_same_section",
    )
    expected = Counter(neighbours)
    rows = query(
        db,
        "select section, neighbour_section, n_confused, n_section, share_of_section, "
        "confusion_rank from metrics.fct_label_confusions where space = 'noisy' "
        "order by confusion_rank",
    )
    assert {(s, t): n for s, t, n, *_ in rows} == dict(expected)
    assert [n for _, _, n, *_ in rows] == sorted(expected.values(), reverse=True)
    assert all(share == pytest.approx(n / size) for _, _, n, size, share, _ in rows)
    assert all(size == PER_SECTION[section] for section, *_, size, _, _ in rows)


def test_cluster_refuses_image_spaces(db, labelled):
    config = config_for(
        planted_config([planted_space("t", "text", 4), planted_space("i", "image", 4)], [])
    )
    with pytest.raises(ClusterError, match="image space"):
        cluster_spaces(db, config, ["i"])


def test_stale_assignments_fail_the_build(db, labelled, tmp_path):
    smaller = {**labelled["vars"], "eval_sample_size": 100}
    with pytest.raises(DbtError, match="assert_cluster_assignments_match_label_sample"):
        dbt_build(db, smaller, tmp_path, "+int_kmeans_scores")
    dbt_build(db, labelled["vars"], tmp_path, "+int_kmeans_scores")


def test_cli_cluster_prints_a_line_per_space(db, labelled, monkeypatch, capsys):
    from embed_udfs.cli import main

    for key, value in db.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("EMBED_UDFS_DSN", raising=False)
    before = query(db, "select * from embeddings.cluster_assignments order by 1, 2, 4, 5")
    code = main(["--vars", json.dumps(labelled["vars"]), "cluster", "--no-dbt"])
    out = capsys.readouterr().out
    assert code == 0
    for space in SPACES:
        assert f"{space}: {2 * len(SEEDS)} KMeans runs (k = {len(SECTIONS)})" in out
    assert query(db, "select * from embeddings.cluster_assignments order by 1, 2, 4, 5") == before
    assert (
        main(["--vars", json.dumps(labelled["vars"]), "cluster", "--no-dbt", "--space", "x"]) == 2
    )
    assert "unknown space 'x'" in capsys.readouterr().err
