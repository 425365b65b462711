"""Where image downloads may go, and what a failing URL costs a run.

Downloads and their redirects reach public addresses only, unless a network
or host is allowed by vars; a redirect to file:// is refused as such. A host
that does not resolve is unreachable (transient) and looked up once per run,
and a URL that failed in one image space is not asked again by the others."""

from __future__ import annotations

import pickle
import socket
from collections import Counter

import pytest
from conftest import PROJECT_DIR, dbt_build, query
from loopback import LOOPBACK, LoopbackImages, loopback_limits
from test_unreachable_images import _load

from embed_udfs.config import IngestLimits, load_config, parse_limits
from embed_udfs.errors import ConfigError
from embed_udfs.jobs.backfill import (
    BackfillJob,
    BackfillJobOptions,
    BackfillOptions,
    backfill_space,
)
from embed_udfs.jobs.backfill.sources import (
    ADDRESS_NOT_ALLOWED,
    NOT_FOUND,
    SCHEME_NOT_ALLOWED,
    UNREACHABLE,
    UNRESOLVED,
    AddressGuard,
    Fetcher,
    ReadFailure,
    RemoteImages,
    read_image_bytes,
)

METADATA = "http://169.254.169.254/latest/meta-data/"
DEAD_HOST = "images.no-such-host.invalid"  # the .invalid TLD never resolves
SPACES = ["clip_image", "clip_b_image", "sigmoid_image"]


def _redirecting(front: LoopbackImages, target: LoopbackImages) -> None:
    front.redirects.update(
        {
            "redirect-metadata.png": METADATA,
            "redirect-loopback.png": target.url("/ok.png"),
            "redirect-file.png": "file:///etc/passwd",
        }
    )


def _reasons(results: list) -> list[tuple[str, bool]]:
    assert all(isinstance(r, ReadFailure) for r in results)
    return [(r.reason, r.transient) for r in results]


@pytest.fixture
def lookups(monkeypatch) -> Counter[str]:
    """getaddrinfo calls per host name, made through the real resolver."""
    calls: Counter[str] = Counter()
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        calls[host] += 1
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    return calls


def test_redirects_to_link_local_loopback_or_file_are_refused_before_a_request():
    with LoopbackImages() as front, LoopbackImages() as target:
        _redirecting(front, target)
        only_front = IngestLimits(image_allowed_hosts=(f"127.0.0.1:{front.port}",))
        for path, address in (
            ("/redirect-metadata.png", "169.254.169.254"),
            ("/redirect-loopback.png", "127.0.0.1"),
        ):
            with pytest.raises(ReadFailure) as caught:
                read_image_bytes(front.url(path), only_front)
            assert caught.value.reason == ADDRESS_NOT_ALLOWED and not caught.value.transient
            assert address in caught.value.detail
            assert "vars.image_allowed_networks" in caught.value.detail
        with pytest.raises(ReadFailure) as to_file:
            read_image_bytes(front.url("/redirect-file.png"), only_front)
        assert to_file.value.reason == SCHEME_NOT_ALLOWED and not to_file.value.transient
        assert "file:///etc/passwd" in to_file.value.detail
        # A host allowed by name is fetched; the literal loopback address it
        # redirects to is still refused.
        by_name = IngestLimits(image_allowed_hosts=("localhost",))
        with pytest.raises(ReadFailure) as caught:
            read_image_bytes(front.url("/redirect-loopback.png", host="localhost"), by_name)
        assert caught.value.reason == ADDRESS_NOT_ALLOWED
        assert front.requests["redirect-loopback.png"] == 2
        # Nothing allowed: the loopback server itself is refused before a request.
        with pytest.raises(ReadFailure) as caught:
            read_image_bytes(front.url("/ok.png"))
        assert caught.value.reason == ADDRESS_NOT_ALLOWED and front.requests["ok.png"] == 0
        assert sum(target.requests.values()) == 0
        # With the loopback network allowed, the redirect is followed.
        followed = read_image_bytes(front.url("/redirect-loopback.png"), loopback_limits())
        assert followed == target.png
        assert target.requests["ok.png"] == 1


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.2", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd00::1", "private"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not public"),
        ("93.184.216.34", None),
        ("2606:4700::1111", None),
    ],
)
def test_only_public_addresses_pass_unless_allowed(monkeypatch, address, why):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, 80, 0, 0) if family == socket.AF_INET6 else (address, 80)
    answer = [(family, socket.SOCK_STREAM, 6, "", sockaddr)]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: answer)
    uri = "http://images.example/a.png"
    if why is None:
        assert AddressGuard().addresses(uri, "images.example", 80) == [(family, sockaddr)]
        return
    with pytest.raises(ReadFailure) as caught:
        AddressGuard().addresses(uri, "images.example", 80)
    assert caught.value.reason == ADDRESS_NOT_ALLOWED and f"({why})" in caught.value.detail
    network = f"{address}/{128 if family == socket.AF_INET6 else 32}"
    for allowed in (
        IngestLimits(image_allowed_networks=(network,)),
        IngestLimits(image_allowed_hosts=("images.example",)),
        IngestLimits(image_allowed_hosts=("images.example:80",)),
    ):
        assert AddressGuard(allowed).addresses(uri, "images.example", 80) == [(family, sockaddr)]
    with pytest.raises(ReadFailure):  # another port of an allowed host:port is not allowed
        AddressGuard(IngestLimits(image_allowed_hosts=("images.example:8080",))).addresses(
            uri, "images.example", 80
        )


def test_allowed_networks_and_hosts_are_validated_like_the_other_vars(tmp_path):
    allowed = parse_limits(
        {
            "image_allowed_networks": ["10.0.0.0/8", "::1"],
            "image_allowed_hosts": ["Images.LAN:8080"],
        },
        tmp_path,
    )
    assert allowed.image_allowed_networks == ("10.0.0.0/8", "::1/128")
    assert allowed.image_allowed_hosts == ("images.lan:8080",)
    for bad, says in (
        ({"image_allowed_networks": ["10.0.0.1/8"]}, r"image_allowed_networks\[0\].*host bits"),
        ({"image_allowed_networks": ["intranet"]}, r"image_allowed_networks\[0\].*not a network"),
        ({"image_allowed_networks": 10}, "image_allowed_networks is 10"),
        ({"image_allowed_hosts": ["http://images.lan/"]}, r"image_allowed_hosts\[0\]"),
        ({"image_allowed_hosts": ["*.lan"]}, r"image_allowed_hosts\[0\]"),
    ):
        with pytest.raises(ConfigError, match=says):
            parse_limits(bad, tmp_path)


def test_the_connection_goes_to_the_address_that_was_checked(monkeypatch):
    """A resolver that answers a public address, then loopback (DNS rebinding):
    the download never reaches the loopback server."""
    calls: Counter[str] = Counter()

    def rebinding(host, port, *args, **kwargs):
        calls[host] += 1
        address = "93.184.216.34" if calls[host] == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    limits = IngestLimits(image_connect_timeout_s=1, image_download_deadline_s=2)
    with LoopbackImages() as server:
        with pytest.raises(ReadFailure) as caught:
            read_image_bytes(server.url("/ok.png", host="rebind.example"), limits)
        assert sum(server.requests.values()) == 0
    assert caught.value.reason == UNREACHABLE and calls["rebind.example"] == 1


def test_a_host_that_does_not_resolve_is_unreachable_and_looked_up_once_per_run(lookups):
    uris = [f"http://{DEAD_HOST}/{i}.png" for i in range(200)]
    with RemoteImages() as remote:
        first = Fetcher(downloads=remote.downloads)
        results = first.read_all(uris)
        # the next space's fetcher, as a decode worker process gets it
        later = pickle.loads(pickle.dumps(Fetcher(downloads=remote.downloads)))
        results += later.read_all([f"http://{DEAD_HOST}:8080/{i}.png" for i in range(50)])
    assert lookups[DEAD_HOST] == 1
    assert first.guard.lookups == 1 and later.guard.lookups == 0
    assert set(_reasons(results)) == {(UNRESOLVED, True)}
    assert DEAD_HOST in str(results[0])


def test_a_url_that_failed_is_not_asked_again_by_the_later_spaces_of_the_run():
    limits = loopback_limits(image_download_deadline_s=1.5, image_connect_timeout_s=1)
    with LoopbackImages() as server, RemoteImages(limits) as remote:
        uris = [server.url(p) for p in ("/missing.png", "/slow.png", "/busy.png", "/ok.png")]
        first = Fetcher(limits, downloads=remote.downloads).read_all(uris)
        asked = Counter(server.requests)
        for _ in range(2):  # two more image spaces, each in its own decode process
            later = pickle.loads(pickle.dumps(Fetcher(limits, downloads=remote.downloads)))
            again = later.read_all(uris)
            assert again[-1] == server.png
            assert _reasons(again[:-1]) == _reasons(first[:-1])
        assert server.requests == asked
    assert _reasons(first[:2]) == [(NOT_FOUND, False), (UNREACHABLE, True)]


def test_a_run_over_three_image_spaces_asks_for_each_failing_url_once(
    db, tmp_path, demo_models, lookups
):
    limits = {"image_download_deadline_s": 1.5, "image_connect_timeout_s": 1}
    with LoopbackImages() as front, LoopbackImages() as target:
        _redirecting(front, target)
        allowed = {**limits, "image_allowed_hosts": [f"127.0.0.1:{front.port}"]}
        config = load_config(PROJECT_DIR, overrides=allowed)
        rows = [
            ("ok", front.url("/ok.png")),
            ("slow", front.url("/slow.png")),
            ("missing", front.url("/missing.png")),
            ("metadata", front.url("/redirect-metadata.png")),
            ("loopback", front.url("/redirect-loopback.png")),
            ("file", front.url("/redirect-file.png")),
        ]
        rows += [(f"dns{i}", f"http://{DEAD_HOST}/{i}.png") for i in range(20)]
        _load(db, config, rows)
        dbt_build(db, {}, tmp_path, "+int_space_inputs")
        summary = BackfillJob().run(db, config, BackfillJobOptions(space=SPACES, workers=0))
        assert [s.embedded for s in summary.details] == [1, 1, 1]
        asked = {kind: n for kind, n in front.requests.items() if kind != "ok.png"}
        assert asked == {
            "slow.png": 1,
            "missing.png": 1,
            "redirect-metadata.png": 1,
            "redirect-loopback.png": 1,
            "redirect-file.png": 1,
        }
        assert sum(target.requests.values()) == 0 and lookups[DEAD_HOST] == 1
        expected = {
            "slow": (UNREACHABLE, True),
            "missing": (NOT_FOUND, False),
            "metadata": (ADDRESS_NOT_ALLOWED, False),
            "loopback": (ADDRESS_NOT_ALLOWED, False),
            "file": (SCHEME_NOT_ALLOWED, False),
            **{f"dns{i}": (UNRESOLVED, True) for i in range(20)},
        }
        for space in SPACES:
            recorded = query(
                db,
                "select product_id, reason, transient from embeddings.backfill_errors "
                "where space = %s",
                (space,),
            )
            assert {p: (reason, t) for p, reason, t in recorded} == expected, space

        # Once loopback is allowed, re-queuing the refused rows loads the image
        # behind the redirect; the link-local one stays refused.
        config = load_config(PROJECT_DIR, overrides={**allowed, **LOOPBACK})
        again = backfill_space(
            db,
            config,
            config.space("clip_image"),
            BackfillOptions(retry_errors=("address not allowed",), num_workers=0),
        )
        assert again.requeued == 2 and again.embedded == 1 and target.requests["ok.png"] == 1
    recorded = query(
        db,
        "select product_id, reason from embeddings.backfill_errors "
        "where space = 'clip_image' and reason = %s",
        (ADDRESS_NOT_ALLOWED,),
    )
    assert recorded == [("metadata", ADDRESS_NOT_ALLOWED)]
