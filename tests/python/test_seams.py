"""The registries: a new encoder backend or a new job is one module plus one
registration, and config validation, dispatch and the refresh order read them."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pytest
from conftest import PROJECT_DIR

from embed_udfs import cli, contract, encoders
from embed_udfs.config import SpaceConfig, load_config
from embed_udfs.encoders import Runtime, load_encoder, register_backend, unit_rows
from embed_udfs.errors import ConfigError, EncoderError
from embed_udfs.jobs import registry as jobs
from embed_udfs.jobs.backfill import BackfillJobOptions
from embed_udfs.jobs.base import Job, JobSummary, options_from
from embed_udfs.jobs.cluster import ClusterJobOptions


@dataclass
class HashEncoder:
    """A tiny text-only backend: each text becomes a seeded random unit vector."""

    space: SpaceConfig
    model_ref: str
    dim: int
    device: str

    def encode_texts(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        rows = [
            np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)).normal(
                size=self.dim
            )
            for t in texts
        ]
        return unit_rows(np.array(rows, dtype=np.float32).reshape(len(texts), self.dim))

    def encode_images(self, images, *, batch_size: int = 64) -> np.ndarray:
        raise EncoderError("the hash backend embeds text only")


def _load_hash(space: SpaceConfig, runtime: Runtime) -> HashEncoder:
    return HashEncoder(space, f"hash:{space.model}", space.dim, runtime.device)


@pytest.fixture
def hash_backend() -> Iterator[None]:
    register_backend("hash", ("text",), _load_hash, "seeded random vectors, for tests")
    yield
    encoders.unregister_backend("hash")


def _vars(backend: str, modality: str = "text") -> dict:
    space = {
        "name": "h",
        "modality": modality,
        "backend": backend,
        "family": "hash",
        "model": "sha256",
        "dim": 8,
    }
    return {"embed_spaces": [space], "embed_pairs": []}


def test_a_registered_backend_is_valid_config_and_loads(hash_backend):
    config = load_config(PROJECT_DIR, overrides=_vars("hash"))
    encoder = load_encoder(config.space("h"), device="cpu")
    assert isinstance(encoder, HashEncoder) and encoder.model_ref == "hash:sha256"
    rows = encoder.encode_texts(["a", "b", "a"])
    assert np.allclose(np.linalg.norm(rows, axis=1), 1) and np.array_equal(rows[0], rows[2])
    assert "seeded random vectors, for tests" in cli.build_parser().format_help()
    # a text-only backend has no tensor interface, which image backfills need
    with pytest.raises(EncoderError, match="no tensor interface"):
        encoders.as_tensor_encoder(encoder)


def test_the_registry_decides_backends_and_their_modalities(hash_backend):
    wrong_modality = load_config(PROJECT_DIR, overrides=_vars("hash", "image"))
    with pytest.raises(ConfigError, match="has modality image, but backend 'hash' embeds only"):
        encoders.check_backends(wrong_modality.spaces)
    with pytest.raises(EncoderError, match="has modality image, but backend 'hash' embeds only"):
        load_encoder(wrong_modality.space("h"), device="cpu")
    encoders.check_backends(load_config(PROJECT_DIR, overrides=_vars("hash")).spaces)
    encoders.unregister_backend("hash")
    unregistered = load_config(PROJECT_DIR, overrides=_vars("hash"))
    with pytest.raises(
        ConfigError,
        match=r"backend is 'hash'; use one of open_clip, sentence_transformers \(the registered",
    ):
        encoders.check_backends(unregistered.spaces)


@dataclass(frozen=True)
class _Job(Job):
    name: str
    after: tuple[str, ...] = ()
    reads: contract.Relation = contract.SPACE_INPUTS
    writes: contract.Relation = contract.Relation("embeddings", "nothing")

    def run(self, settings, config, options) -> JobSummary:
        return JobSummary(self.name, ())


def test_jobs_run_in_dependency_order_and_a_missing_dependency_is_named():
    assert [job.name for job in jobs.jobs()] == ["backfill", "cluster", "rerank", "tune"]
    jobs.register_job(_Job("report_extra", after=("tune_extra",)))
    jobs.register_job(_Job("tune_extra", after=("backfill",)))
    try:
        assert [job.name for job in jobs.jobs()] == [
            "backfill",
            "cluster",
            "rerank",
            "tune",
            "tune_extra",
            "report_extra",
        ]
        jobs.register_job(_Job("orphan", after=("never_registered",)))
        with pytest.raises(ConfigError, match="never_registered"):
            jobs.jobs()
    finally:
        for name in ("report_extra", "tune_extra", "orphan"):
            jobs.unregister_job(name)
    assert [job.name for job in jobs.jobs()] == ["backfill", "cluster", "rerank", "tune"]
    assert JobSummary("x", ("a", "b")).line() == "x: a; b"


def test_each_job_flag_is_declared_once_and_reaches_its_job():
    """A job's sub-command and the job's refresh flags come from its options; the
    refresh's --space goes to the backfill only, not to the cluster's own --space."""
    parser = cli.build_parser()
    parsed = vars(parser.parse_args(["refresh", "--space", "a", "--skip-backfill"]))
    backfill = options_from(BackfillJobOptions, parsed, build_inputs=False, refresh=True)
    cluster = options_from(ClusterJobOptions, parsed, build_inputs=False, refresh=True)
    assert (backfill.space, backfill.skip_backfill, backfill.chunk_size) == (["a"], True, 1024)
    assert (cluster.space, cluster.build_inputs) == (None, False)

    parsed = vars(parser.parse_args(["cluster", "--space", "b", "--no-dbt"]))
    cluster = options_from(ClusterJobOptions, parsed)
    assert (cluster.space, cluster.build_inputs) == (["b"], False)
    assert options_from(ClusterJobOptions, {}).build_inputs  # --no-dbt not given
    with pytest.raises(SystemExit):  # a refresh-only flag is not the backfill's
        parser.parse_args(["backfill", "--skip-backfill"])
