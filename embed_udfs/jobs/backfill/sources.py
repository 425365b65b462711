"""Where inputs come from: image bytes from local paths, file:// and
http(s)://, read with a byte cap and (for HTTP) a deadline on the whole
download, and decoded into RGB images with every decoder failure caught.
HTTP downloads and their redirects reach public addresses only, unless the
configuration allows a network or host (AddressGuard).

A read that fails raises ReadFailure with a reason for backfill_errors and
whether it is transient (could not connect, timed out: tried again on the
next run) or permanent (not found, too large, not a file: not tried again
until the input changes).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import io
import ipaddress
import json
import logging
import os
import socket
import ssl
import stat
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

from embed_udfs.config import IngestLimits
from embed_udfs.retry import HTTP_ANSWER, RetriesExhausted, retry_call

log = logging.getLogger(__name__)

NOT_FOUND = "missing image: not found"
NOT_A_FILE = "missing image: not a regular file"
UNSUPPORTED = "missing image: unsupported URI"
REFUSED = "missing image: refused by the server"
UNREACHABLE = "unreachable image: could not connect or timed out"
UNRESOLVED = "unreachable image: host does not resolve"
ADDRESS_NOT_ALLOWED = "refused image: address not allowed"
SCHEME_NOT_ALLOWED = "refused image: redirect to a scheme other than http(s)"
TOO_LARGE = "image too large"
CORRUPT = "corrupt image"

MAX_REDIRECTS = 5
READ_SIZE = 1 << 16
READ_IDLE_S = 10.0  # no byte for this long: timed out (the deadline bounds the total)
DEFAULT_LIMITS = IngestLimits()
# Remote image bytes one process keeps for the later image spaces of a run.
DOWNLOAD_CACHE_MAX_BYTES = 1 << 30
RESOLVED_KEEP_S = 60.0  # a host's addresses are looked up again after this long


class ReadFailure(OSError):
    """An input that could not be read: a reason to record, and whether to try again."""

    def __init__(self, reason: str, detail: str, *, transient: bool = False, known: bool = False):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.transient = reason, detail, transient
        # learned earlier in the run (a host that does not resolve): nothing was asked
        self.known = known


def input_hash(recipe: str, payload: bytes) -> str:
    """sha256 of the recipe and exactly what the model is fed."""
    return hashlib.sha256(recipe.encode() + b"\0" + payload).hexdigest()


def is_remote(uri: str) -> bool:
    return urlsplit(uri).scheme in ("http", "https")


def host_of(uri: str) -> str:
    """host:port of a remote URI (the unit of per-host limits), '' for local files."""
    parts = urlsplit(uri)
    return parts.netloc.lower() if parts.scheme in ("http", "https") else ""


def read_image_bytes(
    uri: str,
    limits: IngestLimits = DEFAULT_LIMITS,
    *,
    attempts: int | None = None,
    guard: AddressGuard | None = None,
) -> bytes:
    """The bytes behind a local path, file:// or http(s):// URI, at most limits.image_max_bytes.

    HTTP connects only where `guard` (by default one made from `limits`) allows.
    Raises ReadFailure with the reason when the bytes cannot be had.
    """
    parsed = urlsplit(uri)
    if parsed.scheme in ("http", "https"):
        policy = HTTP_ANSWER if attempts is None else replace(HTTP_ANSWER, max_attempts=attempts)
        where = guard if guard is not None else AddressGuard(limits)
        try:
            return retry_call(
                lambda: _read_http(uri, limits, where),
                policy,
                lambda exc: isinstance(exc, _RetryableAnswer),
            )
        except RetriesExhausted as exc:
            last = exc.last
            assert isinstance(last, ReadFailure)
            raise ReadFailure(
                last.reason, f"{last.detail} (after {exc.attempts} attempts)", transient=True
            ) from exc
    if parsed.scheme not in ("", "file"):
        raise ReadFailure(
            UNSUPPORTED, f"scheme {parsed.scheme!r}; use a path, file:// or http(s)://"
        )
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    return read_local(path, limits.image_max_bytes)


def read_local(path: Path, max_bytes: int) -> bytes:
    """A regular file's bytes; devices, FIFOs and directories are refused before opening."""
    try:
        info = os.stat(path)
    except FileNotFoundError as exc:
        raise ReadFailure(NOT_FOUND, f"{path}: no such file") from exc
    except OSError as exc:
        raise ReadFailure(NOT_FOUND, f"{path}: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        # Opening a FIFO blocks until a writer comes; /dev/zero never ends.
        raise ReadFailure(NOT_A_FILE, f"{path} is a {_file_kind(info.st_mode)}")
    if info.st_size > max_bytes:
        raise ReadFailure(TOO_LARGE, f"{path} has {info.st_size} bytes; the cap is {max_bytes}")
    try:
        with open(path, "rb") as handle:
            payload = handle.read(max_bytes + 1)  # a file that grew since stat is still capped
    except OSError as exc:
        raise ReadFailure(NOT_FOUND, f"{path}: {exc.strerror or exc}") from exc
    if len(payload) > max_bytes:
        raise ReadFailure(TOO_LARGE, f"{path} has more than {max_bytes} bytes")
    return payload


def _file_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "directory"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return kind
    return "special file"


class _RetryableAnswer(ReadFailure):
    """5xx, 429 or 408: the server answered and asks to be asked again."""


def _read_http(uri: str, limits: IngestLimits, guard: AddressGuard) -> bytes:
    deadline = time.monotonic() + limits.image_download_deadline_s
    hop = uri
    for _ in range(MAX_REDIRECTS + 1):
        try:
            location = _fetch_once(hop, limits, deadline, guard)
        except ReadFailure as failure:
            if hop == uri:
                raise
            failure.detail = f"{uri} redirected to {failure.detail}"
            raise
        if isinstance(location, bytes):
            return location
        target = urljoin(hop, location)
        scheme = urlsplit(target).scheme
        if scheme not in ("http", "https"):
            # never read, and said as it is: a file:// target is not an unknown host
            raise ReadFailure(
                SCHEME_NOT_ALLOWED,
                f"{uri} redirected to {target}: only http(s) redirects are followed",
            )
        hop = target
    raise ReadFailure(REFUSED, f"{uri}: more than {MAX_REDIRECTS} redirects")


_TLS: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _TLS
    if _TLS is None:  # what http.client would use; made once, it is thread-safe
        _TLS = ssl.create_default_context()
    return _TLS


def _fetch_once(
    uri: str, limits: IngestLimits, deadline: float, guard: AddressGuard
) -> bytes | str:
    """The body of one GET, or the Location of a redirect."""
    parts = urlsplit(uri)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    host = parts.hostname or ""
    connection = connection_class(host, parts.port, timeout=limits.image_connect_timeout_s)
    expired = threading.Event()

    def expire() -> None:
        # The deadline is for the whole download: a server that trickles one
        # byte every few seconds never trips a per-read timeout.
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), expire)
    timer.daemon = True
    timer.start()
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        port = parts.port or (443 if parts.scheme == "https" else 80)
        # Connect to the addresses the guard checked: a second lookup could return others.
        sock = _connect(guard.addresses(uri, host, port), limits.image_connect_timeout_s)
        if parts.scheme == "https":
            sock = _tls().wrap_socket(sock, server_hostname=host)
        connection.sock = sock
        # A server that sends nothing for READ_IDLE_S is as good as gone.
        connection.sock.settimeout(min(READ_IDLE_S, max(0.01, deadline - time.monotonic())))
        connection.request("GET", path, headers={"User-Agent": "embed-udfs", "Accept": "image/*"})
        response = connection.getresponse()
        status = response.status
        if status in (301, 302, 303, 307, 308) and response.getheader("Location"):
            return str(response.getheader("Location"))
        if status in (404, 410):
            raise ReadFailure(NOT_FOUND, f"{uri}: HTTP {status} {response.reason}")
        if status in (408, 429) or status >= 500:
            raise _RetryableAnswer(
                UNREACHABLE, f"{uri}: HTTP {status} {response.reason}", transient=True
            )
        if status >= 400 or status < 200:
            raise ReadFailure(REFUSED, f"{uri}: HTTP {status} {response.reason}")
        length = response.getheader("Content-Length")
        if length and length.isdigit() and int(length) > limits.image_max_bytes:
            raise ReadFailure(
                TOO_LARGE, f"{uri}: {length} bytes; the cap is {limits.image_max_bytes}"
            )
        body = bytearray()
        while True:
            chunk = response.read1(READ_SIZE)
            if expired.is_set():
                raise _deadline(uri, limits)
            if not chunk:
                break
            body += chunk
            if len(body) > limits.image_max_bytes:
                raise ReadFailure(
                    TOO_LARGE, f"{uri}: more than {limits.image_max_bytes} bytes; stopped reading"
                )
        return bytes(body)
    except ReadFailure:
        raise
    except ssl.SSLCertVerificationError as exc:
        raise ReadFailure(REFUSED, f"{uri}: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise _deadline(uri, limits) from exc
        raise ReadFailure(UNREACHABLE, f"{uri}: {_describe(exc)}", transient=True) from exc
    finally:
        timer.cancel()
        connection.close()


def _connect(addresses: Sequence[tuple[int, tuple]], timeout: float) -> socket.socket:
    """A TCP connection to the first of `addresses` that answers."""
    error: OSError = OSError("no address to connect to")
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def _plain(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IPv4 address inside an IPv4-mapped one (::ffff:127.0.0.1 is loopback)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _not_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why an address is not a public one (loopback, link-local, ...), None if it is."""
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if address.is_global else "not public"


class AddressGuard:
    """Where HTTP image downloads may connect, and each host looked up once.

    A host's addresses are kept for RESOLVED_KEEP_S; a host that does not
    resolve is not looked up again in the run (nor by other processes of the
    run, through `shared`). Only public addresses are returned, and those in
    vars.image_allowed_networks; a host in vars.image_allowed_hosts ("name",
    or "name:port" for one port) gets all its addresses. The caller connects
    to exactly what is returned, so DNS cannot answer differently in between.
    """

    def __init__(self, limits: IngestLimits = DEFAULT_LIMITS, shared: DownloadCache | None = None):
        self.networks = [ipaddress.ip_network(n) for n in limits.image_allowed_networks]
        self.hosts = frozenset(limits.image_allowed_hosts)
        self.shared = shared
        self.lookups = 0  # getaddrinfo calls made, for tests and benchmarks
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._resolved: dict[tuple[str, int], tuple[float, list[tuple[int, tuple]]]] = {}
        self._unresolvable: dict[str, str] = {}  # host -> why

    def addresses(self, uri: str, host: str, port: int) -> list[tuple[int, tuple]]:
        """(family, sockaddr) to connect to for host:port; ReadFailure if there is none."""
        found = self._lookup(uri, host.lower(), port)
        named = f"[{host}]" if ":" in host else host
        if {named.lower(), f"{named.lower()}:{port}"} & self.hosts:
            return found
        allowed, refused = [], []
        for family, sockaddr in found:
            raw = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
            address = _plain(raw)
            why = _not_public(address)
            if why is None or any(a in n for n in self.networks for a in (raw, address)):
                allowed.append((family, sockaddr))
            else:
                refused.append((address, why))
        if allowed:
            return allowed
        if not refused:
            raise ReadFailure(
                UNRESOLVED, f"{uri}: {host} has no IPv4 or IPv6 address", transient=True
            )
        address, why = refused[0]
        cidr = f"{address}/{address.max_prefixlen}"
        raise ReadFailure(
            ADDRESS_NOT_ALLOWED,
            f"{uri}: {host} is {address} ({why}); image downloads reach public addresses only. "
            f"If this host is yours, add {cidr!r} (or its network) to vars.image_allowed_networks "
            f"or {named!r} to vars.image_allowed_hosts, then rerun with "
            "`embed-udfs backfill --retry-errors --reason 'address not allowed'`",
        )

    def unresolvable(self, uri: str) -> ReadFailure | None:
        """The failure to record for `uri` if its host did not resolve earlier in this run."""
        host = (urlsplit(uri).hostname or "").lower()
        why = self._known_dead(host)
        if why is None:
            return None
        return ReadFailure(
            UNRESOLVED, f"{uri}: {why}; not looked up again in this run", transient=True, known=True
        )

    def _lookup(self, uri: str, host: str, port: int) -> list[tuple[int, tuple]]:
        with self._lock:
            host_lock = self._host_locks.setdefault(host, threading.Lock())
        with host_lock:  # one lookup at a time per host: the others wait for its answer
            dead = self.unresolvable(uri)
            if dead is not None:
                raise dead
            kept = self._resolved.get((host, port))
            if kept is not None and time.monotonic() - kept[0] < RESOLVED_KEEP_S:
                return kept[1]
            self.lookups += 1
            try:
                answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                why = f"{host} does not resolve ({getattr(exc, 'strerror', None) or exc})"
                self._unresolvable[host] = why
                if self.shared is not None:
                    self.shared.put_unresolvable(host, why)
                raise ReadFailure(UNRESOLVED, f"{uri}: {why}", transient=True) from exc
            found: list[tuple[int, tuple]] = [
                (family, sockaddr)
                for family, _, _, _, sockaddr in answers
                if family in (socket.AF_INET, socket.AF_INET6)
            ]
            self._resolved[host, port] = (time.monotonic(), found)
            return found

    def _known_dead(self, host: str) -> str | None:
        if host in self._unresolvable:
            return self._unresolvable[host]
        why = self.shared.unresolvable(host) if self.shared is not None else None
        if why is not None:
            self._unresolvable[host] = why
        return why


def _deadline(uri: str, limits: IngestLimits) -> ReadFailure:
    return ReadFailure(
        UNREACHABLE,
        f"{uri}: download took longer than {limits.image_download_deadline_s:g}s "
        "(vars.image_download_deadline_s)",
        transient=True,
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return "connection reset"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


class HostHealth:
    """Transient failures in a row per remote host, over one run of several spaces.

    A decode worker counts for itself while a space runs; the runner folds each
    batch's outcome in here, and the next space's Fetcher starts from it, so a
    dead host is learned once per run, not once per image space.
    """

    def __init__(self, limits: IngestLimits = DEFAULT_LIMITS):
        self.limit = limits.image_host_failures
        self._failures: Counter[str] = Counter()

    def record(self, uri: str, *, ok: bool, transient: bool = False) -> None:
        """One read's outcome: a success clears the host's count, a transient failure adds one."""
        host = host_of(uri)
        if not host:
            return
        if ok:
            self._failures[host] = 0
        elif transient:
            # Rows skipped untried count too; the cap keeps the figure a count of tries.
            self._failures[host] = min(self._failures[host] + 1, self.limit)

    def failing(self) -> dict[str, int]:
        """host -> transient failures in a row, for hosts with any."""
        return {host: n for host, n in self._failures.items() if n}


class DownloadCache:
    """What this run learned of remote images, so that the image spaces of one
    run ask for each URL once: the bytes downloaded, the failures of URLs that
    could not be had, and the hosts that do not resolve.

    Files named by a hash in a directory of the run, each written whole
    (a partial file, then a rename), so decode worker processes share it. Each
    process keeps at most max_bytes of image bytes; past that, later bytes are
    not kept (failures are a few bytes each and always kept). A remote image is
    identified by its URL (see plan.py), so bytes kept under a URL are the
    bytes of that input.
    """

    def __init__(self, directory: Path, max_bytes: int = DOWNLOAD_CACHE_MAX_BYTES):
        self.directory, self.max_bytes = directory, max_bytes
        self._setup()

    def _setup(self) -> None:
        self._lock = threading.Lock()
        self._kept = 0

    def __getstate__(self) -> dict:
        return {"directory": self.directory, "max_bytes": self.max_bytes}

    def __setstate__(self, state: dict) -> None:
        self.directory, self.max_bytes = state["directory"], state["max_bytes"]
        self._setup()

    def _path(self, uri: str) -> Path:
        return self.directory / hashlib.sha256(uri.encode()).hexdigest()

    def get(self, uri: str) -> bytes | None:
        try:
            return self._path(uri).read_bytes()
        except OSError:
            return None

    def put(self, uri: str, payload: bytes) -> None:
        with self._lock:
            if self._kept + len(payload) > self.max_bytes:
                return
            self._kept += len(payload)
        self._write(self._path(uri), payload)

    def failure(self, uri: str) -> ReadFailure | None:
        """How reading `uri` failed earlier in this run, if it did."""
        try:
            record = json.loads(self._path(uri).with_suffix(".failed").read_text())
            reason, detail, transient = record["reason"], record["detail"], record["transient"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return ReadFailure(
            reason, f"{detail}; failed earlier in this run, not asked again", transient=transient
        )

    def put_failure(self, uri: str, failure: ReadFailure) -> None:
        record: dict[str, object] = {"reason": failure.reason, "detail": failure.detail}
        record["transient"] = failure.transient
        self._write(self._path(uri).with_suffix(".failed"), json.dumps(record).encode())

    def unresolvable(self, host: str) -> str | None:
        """Why `host` did not resolve earlier in this run, if it did not."""
        try:
            return self._host_path(host).read_text() or None
        except OSError:
            return None

    def put_unresolvable(self, host: str, why: str) -> None:
        self._write(self._host_path(host), why.encode())

    def _host_path(self, host: str) -> Path:
        return self.directory / f"{hashlib.sha256(host.encode()).hexdigest()}.unresolvable"

    def _write(self, path: Path, payload: bytes) -> None:
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
        try:
            partial.write_bytes(payload)
            partial.replace(path)
        except OSError:  # a full disk costs a download later, never the run
            with contextlib.suppress(OSError):
                partial.unlink()


class RemoteImages:
    """What the image spaces of one run share about remote images: each host's
    transient failures in a row, and (in `downloads`) the bytes already
    downloaded, the URLs that failed and the hosts that do not resolve.

    `with RemoteImages(limits) as remote:` around the run; the downloads are
    deleted when it ends.
    """

    def __init__(self, limits: IngestLimits = DEFAULT_LIMITS):
        self.hosts = HostHealth(limits)
        self.downloads: DownloadCache | None = None
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> RemoteImages:
        self._directory = tempfile.TemporaryDirectory(prefix="embed-udfs-images-")
        self.downloads = DownloadCache(Path(self._directory.name))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._directory is not None:
            self._directory.cleanup()
        self._directory, self.downloads = None, None


class Fetcher:
    """Reads many images at once: a bounded thread pool with at most
    image_fetch_per_host reads to one host, and a host with
    image_host_failures transient failures since its last success is not
    asked again in this run (its rows are recorded as transient failures, so
    the next run tries them). `failing` carries the counts of earlier spaces
    of the run (HostHealth.failing), and `downloads` the bytes they fetched
    and the URLs that failed: each URL is asked for once per run."""

    def __init__(
        self,
        limits: IngestLimits = DEFAULT_LIMITS,
        failing: Mapping[str, int] | None = None,
        downloads: DownloadCache | None = None,
    ):
        self.limits = limits
        self.failing = dict(failing or {})
        self.downloads = downloads
        self._setup()

    def _setup(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._failures: Counter[str] = Counter(self.failing)
        self.guard = AddressGuard(self.limits, self.downloads)

    def __getstate__(self) -> dict:
        # threads and locks stay in the process that made them
        return {"limits": self.limits, "failing": self.failing, "downloads": self.downloads}

    def __setstate__(self, state: dict) -> None:
        self.limits, self.failing = state["limits"], state["failing"]
        self.downloads = state["downloads"]
        self._setup()

    def read_all(self, uris: Sequence[str]) -> list[bytes | ReadFailure]:
        """The bytes of each URI, or the ReadFailure that stopped it, in order."""
        if len(uris) <= 1:
            return [self.read(uri) for uri in uris]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                self.limits.image_fetch_threads, thread_name_prefix="embed-udfs-fetch"
            )
        return list(self._pool.map(self.read, uris))

    def read(self, uri: str) -> bytes | ReadFailure:
        host = host_of(uri)
        if not host:
            try:
                return read_image_bytes(uri, self.limits)
            except ReadFailure as failure:
                return failure
        if self.downloads is not None:
            kept = self.downloads.get(uri)
            if kept is not None:
                return kept
            failed = self.downloads.failure(uri)
            if failed is not None:
                return failed
        with self._lock:
            slot = self._slots.setdefault(
                host, threading.BoundedSemaphore(self.limits.image_fetch_per_host)
            )
        with slot:
            # a host that does not resolve says so, rather than "failed N times"
            skipped = self.guard.unresolvable(uri) or self._skipped(uri, host)
            if skipped is not None:
                return skipped
            try:
                payload = read_image_bytes(uri, self.limits, guard=self.guard)
            except ReadFailure as failure:
                if self.downloads is not None and not failure.known:
                    self.downloads.put_failure(uri, failure)
                if failure.transient:
                    # Only a success clears the count: a host that answers 404
                    # quickly but hangs on the rest is still skipped.
                    with self._lock:
                        self._failures[host] += 1
                return failure
            with self._lock:
                self._failures[host] = 0
            if self.downloads is not None:
                self.downloads.put(uri, payload)
            return payload

    def _skipped(self, uri: str, host: str) -> ReadFailure | None:
        with self._lock:
            failures = self._failures[host]
        if failures < self.limits.image_host_failures:
            return None
        return ReadFailure(
            UNREACHABLE,
            f"{uri}: not tried; {host} failed {failures} times in a row in this run "
            "(vars.image_host_failures)",
            transient=True,
        )


def decode_image(payload: bytes):
    """A PIL RGB image from bytes; ValueError with the decoder's reason if not an image.

    Every decoder failure counts, decompression bombs included: PIL warns above
    Image.MAX_IMAGE_PIXELS and raises above twice that, and both are refused.
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(payload))
            image.load()
            return image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ValueError(f"decompression bomb: {exc}") from exc
    except MemoryError as exc:
        raise ValueError("decoding needs more memory than there is") from exc
    except Exception as exc:  # a decoder can fail in any way on hostile bytes
        raise ValueError(str(exc) or type(exc).__name__) from exc
