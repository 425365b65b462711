"""Hostile image inputs, read without a database: decompression bombs, special
files, bodies over the cap, a server that trickles bytes, dead hosts. Each is
refused with a reason, quickly, and says whether a later run may succeed."""

from __future__ import annotations

import os
import pickle
import struct
import threading
import time
import zlib
from pathlib import Path

import pytest
from loopback import LoopbackImages, closed_port, loopback_limits, png_bytes

from embed_udfs.config import IngestLimits
from embed_udfs.jobs.backfill.loader import ImageDataset, ImageInput
from embed_udfs.jobs.backfill.sources import (
    CORRUPT,
    NOT_A_FILE,
    NOT_FOUND,
    TOO_LARGE,
    UNREACHABLE,
    DownloadCache,
    Fetcher,
    HostHealth,
    ReadFailure,
    RemoteImages,
    decode_image,
    read_image_bytes,
)
from embed_udfs.retry import Backoff, RetriesExhausted, retry_call


def bomb_png(side: int) -> bytes:
    """A 1-bit greyscale PNG of side x side pixels, all zero: a few KB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )


def _within(seconds: float, fn, *args):
    """fn(*args) on a daemon thread; fail (instead of hanging the suite) if it takes longer."""
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # handed back to the test
            result["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s"
    if "error" in result:
        raise result["error"]
    return result["value"], time.monotonic() - started


def test_decompression_bombs_are_refused_as_corrupt_not_fatal(tmp_path):
    from PIL import Image

    above_error = bomb_png(13_500)  # 182 M pixels: PIL raises DecompressionBombError
    above_warning = bomb_png(10_000)  # 100 M pixels: PIL only warns, then would decode
    assert len(above_error) < 100_000 and Image.MAX_IMAGE_PIXELS < 10_000**2
    for payload in (above_error, above_warning):
        with pytest.raises(ValueError, match="decompression bomb"):
            decode_image(payload)
    # In the decode worker a bomb becomes a rejected row; the good image beside it decodes.
    (tmp_path / "bomb.png").write_bytes(above_error)
    (tmp_path / "good.png").write_bytes(png_bytes())
    dataset = ImageDataset(
        [
            ImageInput("bomb", str(tmp_path / "bomb.png"), "h1"),
            ImageInput("good", str(tmp_path / "good.png"), "h2"),
        ],
        transform=lambda image: image.size,
        recipe="r",
    )
    bomb, good = dataset.__getitems__([0, 1])
    assert bomb[1] is None and bomb[3] == CORRUPT and "decompression bomb" in bomb[4]
    assert good[1] == (16, 16) and good[3] is None


def test_special_files_are_refused_by_type_before_reading(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it for reading would block until a writer came
    for path, kind in (("/dev/zero", "character device"), (fifo, "FIFO"), (tmp_path, "directory")):
        with pytest.raises(ReadFailure) as caught:
            _within(5, read_image_bytes, str(path))
        assert caught.value.reason == NOT_A_FILE and kind in caught.value.detail
        assert not caught.value.transient
    with pytest.raises(ReadFailure) as caught:
        read_image_bytes(str(tmp_path / "absent.png"))
    assert caught.value.reason == NOT_FOUND and not caught.value.transient


def test_local_files_over_the_byte_cap_are_refused(tmp_path):
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 2001)
    with pytest.raises(ReadFailure) as caught:
        read_image_bytes(str(big), IngestLimits(image_max_bytes=2000))
    assert caught.value.reason == TOO_LARGE and not caught.value.transient
    assert read_image_bytes(str(big), IngestLimits(image_max_bytes=2001)) == b"\0" * 2001


def test_http_body_over_the_cap_stops_reading_at_the_cap():
    limits = loopback_limits(image_max_bytes=1_000_000)
    with LoopbackImages() as server:
        with pytest.raises(ReadFailure) as caught:
            _within(30, read_image_bytes, server.url("/endless.png"), limits)
        assert caught.value.reason == TOO_LARGE and not caught.value.transient
        # streamed, not downloaded whole: the server got to send little beyond the cap
        assert server.sent["endless.png"] < 8 * limits.image_max_bytes
        with pytest.raises(ReadFailure, match="the cap is 1000000") as declared:
            read_image_bytes(server.url("/declared.png"), limits)
        assert declared.value.reason == TOO_LARGE
        assert read_image_bytes(server.url("/ok.png"), limits) == server.png


def test_a_server_trickling_bytes_hits_the_download_deadline():
    limits = loopback_limits(image_download_deadline_s=2.5, image_connect_timeout_s=1)
    with LoopbackImages() as server:
        # one byte a second: no single read ever waits long enough to time out
        with pytest.raises(ReadFailure) as caught:
            _, _ = _within(20, read_image_bytes, server.url("/slow.png"), limits)
        assert caught.value.reason == UNREACHABLE and caught.value.transient
        assert "2.5s" in caught.value.detail
        started = time.monotonic()
        with pytest.raises(ReadFailure) as hung:
            read_image_bytes(server.url("/hang.png"), limits)
        assert hung.value.transient and time.monotonic() - started < 10


def test_not_found_is_permanent_and_could_not_connect_is_transient():
    limits = loopback_limits()
    with LoopbackImages() as server:
        for path in ("/missing.png", "/gone.png"):
            with pytest.raises(ReadFailure) as caught:
                read_image_bytes(server.url(path), limits)
            assert caught.value.reason == NOT_FOUND and not caught.value.transient
        with pytest.raises(ReadFailure) as busy:
            read_image_bytes(server.url("/busy.png"), limits, attempts=2)
        assert busy.value.transient and "503" in busy.value.detail
    with pytest.raises(ReadFailure) as refused:
        read_image_bytes(f"http://127.0.0.1:{closed_port()}/a.png", limits)
    assert refused.value.reason == UNREACHABLE and refused.value.transient
    assert "refused" in refused.value.detail


def test_fetcher_bounds_each_host_and_skips_a_dead_one():
    limits = loopback_limits(image_fetch_threads=8, image_fetch_per_host=2, image_host_failures=3)
    fetcher = Fetcher(limits)
    with LoopbackImages() as server:
        uris = [server.url(f"/pause.png?i={i}") for i in range(8)]
        results = fetcher.read_all(uris)
        assert all(r == server.png for r in results)
        assert server.peak["pause.png"] == 2  # concurrent, but never above the per-host limit
    dead = f"http://127.0.0.1:{closed_port()}"
    results, seconds = _within(30, fetcher.read_all, [f"{dead}/{i}.png" for i in range(40)])
    assert all(isinstance(r, ReadFailure) and r.transient for r in results)
    skipped = [r for r in results if "not tried" in r.detail]
    assert len(skipped) >= 40 - limits.image_host_failures - limits.image_fetch_per_host


def test_a_host_found_dead_in_one_space_is_not_asked_again_in_the_next():
    limits = loopback_limits(image_fetch_per_host=2, image_host_failures=3)
    hosts = HostHealth(limits)
    with LoopbackImages() as server:
        hosts.record(server.url("/ok.png"), ok=True)
        for i in range(5):  # what the runner saw of the first space: transient failures
            hosts.record(server.url(f"/hang.png?i={i}"), ok=False, transient=True)
        assert hosts.failing() == {server.url("").split("//")[1]: 3}  # capped at the limit
        later = Fetcher(limits, hosts.failing())
        results = later.read_all([server.url(f"/hang.png?j={i}") for i in range(6)])
        assert server.requests["hang.png"] == 0
    assert all(isinstance(r, ReadFailure) and r.transient for r in results)
    assert all("not tried" in r.detail for r in results if isinstance(r, ReadFailure))
    # a permanent failure says nothing of the host, and a success clears it
    hosts.record("http://other.example/a.png", ok=False, transient=False)
    hosts.record(server.url("/ok.png"), ok=True)
    assert hosts.failing() == {}


def test_the_spaces_of_one_run_download_a_remote_image_once(tmp_path):
    with LoopbackImages() as server, RemoteImages() as remote:
        uris = [server.url(f"/ok.png?i={i}") for i in range(6)]
        first = Fetcher(loopback_limits(), downloads=remote.downloads).read_all(uris)
        # the next space's fetcher, as a decode worker process gets it
        later = pickle.loads(pickle.dumps(Fetcher(loopback_limits(), downloads=remote.downloads)))
        again = later.read_all(uris)
        assert server.requests["ok.png"] == 6
        assert first == again == [server.png] * 6
        kept = remote.downloads
        assert kept is not None and len(list(kept.directory.iterdir())) == 6
    assert not kept.directory.exists()  # the run's downloads go with it
    # past its byte budget a cache keeps nothing more, and a miss is a download
    small = DownloadCache(tmp_path, max_bytes=10)
    small.put("http://h/a.png", b"12345678")
    small.put("http://h/b.png", b"12345678")
    assert small.get("http://h/a.png") == b"12345678" and small.get("http://h/b.png") is None


def test_retry_call_backs_off_until_the_deadline():
    waits: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("down")
        return "up"

    policy = Backoff(first_delay_s=0.5, max_delay_s=1.0, deadline_s=60)
    assert retry_call(flaky, policy, lambda e: isinstance(e, ConnectionError), sleep=waits.append)
    assert waits == [0.5, 1.0]
    with pytest.raises(ValueError):  # not retryable: raised at once
        retry_call(lambda: int("x"), policy, lambda e: False, sleep=waits.append)
    always = Backoff(first_delay_s=0.01, max_delay_s=0.02, deadline_s=0.2)

    def down() -> None:
        raise ConnectionError("down")

    with pytest.raises(RetriesExhausted) as caught:
        retry_call(down, always, lambda e: True)
    assert caught.value.attempts > 3 and isinstance(caught.value.last, ConnectionError)


def test_limits_are_validated_like_the_other_vars(tmp_path: Path):
    from embed_udfs.config import parse_limits
    from embed_udfs.errors import ConfigError

    assert parse_limits({}, tmp_path) == IngestLimits()
    assert parse_limits({"image_max_bytes": 10}, tmp_path).image_max_bytes == 10
    for bad in ({"image_max_bytes": "50MB"}, {"backfill_failure_warn_share": 2}):
        with pytest.raises(ConfigError, match="vars"):
            parse_limits(bad, tmp_path)
