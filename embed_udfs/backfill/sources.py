"""Where inputs come from: image bytes from local paths, file:// and
http(s):// (with timeouts and retries), and decoding them into RGB images."""

from __future__ import annotations

import hashlib
import io
import logging
import time
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import unquote, urlparse
from urllib.request import Request, urlopen

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 10.0
HTTP_ATTEMPTS = 3


def input_hash(recipe: str, payload: bytes) -> str:
    """sha256 of the recipe and exactly what the model is fed."""
    return hashlib.sha256(recipe.encode() + b"\0" + payload).hexdigest()


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https")


def read_image_bytes(
    uri: str, *, timeout: float = HTTP_TIMEOUT_S, attempts: int = HTTP_ATTEMPTS
) -> bytes:
    """The bytes behind a local path, file:// or http(s):// URI.

    Remote reads time out after `timeout` seconds and are retried with backoff
    on connection errors and 5xx/429 answers; a 4xx answer is final. Raises
    OSError with the reason when the bytes cannot be had.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("http", "https"):
        return _read_http(uri, timeout, attempts)
    if parsed.scheme not in ("", "file"):
        raise OSError(
            f"unsupported URI scheme {parsed.scheme!r}; use a path, file:// or http(s)://"
        )
    path = Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(uri)
    return path.read_bytes()


def _read_http(uri: str, timeout: float, attempts: int) -> bytes:
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            request = Request(uri, headers={"User-Agent": "embed-udfs"})
            with urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured URIs
                return response.read()
        except HTTPError as exc:
            if exc.code < 500 and exc.code != 429:
                raise OSError(f"HTTP {exc.code} {exc.reason}") from exc
            error: Exception = exc
        except (URLError, TimeoutError, ConnectionError) as exc:
            error = exc
        if attempt < attempts:
            log.debug("retrying %s after %s (attempt %d)", uri, error, attempt)
            time.sleep(delay)
            delay *= 2
    raise OSError(f"{error} (after {attempts} attempts)")


def decode_image(payload: bytes):
    """A PIL RGB image from bytes; ValueError with the decoder's reason if not an image."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(payload))
        image.load()
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from exc
