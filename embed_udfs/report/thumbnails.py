"""Thumbnails for the report's failure gallery: each image read with the
backfill's reader (its byte cap, and for http(s) its address guard, per-host
bounds and deadline), decoded, downscaled and re-encoded as a small JPEG, so
no byte of the original reaches the page. Remote images are read only when
asked (`--fetch-images`); the thumbnails' total size is capped."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from embed_udfs.config import IngestLimits
from embed_udfs.jobs.backfill.sources import (
    CORRUPT,
    Fetcher,
    ReadFailure,
    decode_image,
    is_remote,
)
from embed_udfs.jobs.base import progress_bar

log = logging.getLogger(__name__)

THUMBNAIL_PIXELS = 96  # the longer side, in pixels
JPEG_QUALITY = 70
# all thumbnails of one report together, as base64 text
DEFAULT_MAX_BYTES = 3 * 1024 * 1024
NOT_FETCHED = "remote image not fetched (pass --fetch-images to read it)"
NO_IMAGE = "no image in the catalog"
OVER_CAP = "left out: the report's thumbnail budget was spent"


@dataclass(frozen=True)
class Thumbnail:
    """A product image as the page shows it: `css_class` names its data URI in the
    page's style sheet, or `reason` says why it shows a placeholder."""

    css_class: str | None = None
    reason: str | None = None


@dataclass
class ThumbnailSet:
    """The thumbnails of one page: each URI's Thumbnail, the data URIs by CSS class,
    and what the size cap left out."""

    by_uri: dict[str, Thumbnail] = field(default_factory=dict)
    data_uris: dict[str, str] = field(default_factory=dict)
    max_bytes: int = DEFAULT_MAX_BYTES
    used_bytes: int = 0
    left_out: int = 0

    def get(self, uri: str | None) -> Thumbnail:
        if not uri:
            return Thumbnail(reason=NO_IMAGE)
        return self.by_uri.get(uri, Thumbnail(reason=OVER_CAP))


def thumbnail_jpeg(payload: bytes, pixels: int = THUMBNAIL_PIXELS) -> bytes:
    """The image in `payload` decoded, downscaled to fit `pixels` and re-encoded as JPEG.

    Raises ValueError with the decoder's reason when it is not an image.
    """
    from PIL import Image

    image = decode_image(payload)
    image.thumbnail((pixels, pixels), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()


def make_thumbnails(
    uris: Iterable[str | None],
    limits: IngestLimits,
    *,
    fetch_remote: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ThumbnailSet:
    """Thumbnails for `uris` in the order given (the most important first: when the
    budget runs out, the rest show a placeholder that says so)."""
    result = ThumbnailSet(max_bytes=max_bytes)
    wanted = list(dict.fromkeys(uri for uri in uris if uri))
    to_read = []
    for uri in wanted:
        if is_remote(uri) and not fetch_remote:
            result.by_uri[uri] = Thumbnail(reason=NOT_FETCHED)
        else:
            to_read.append(uri)
    if not to_read:
        return result
    fetcher = Fetcher(limits)
    encoded: dict[bytes, str] = {}  # identical images share one class
    batch = max(limits.image_fetch_threads * 4, 16)
    with progress_bar(total=len(to_read), desc="thumbnails", unit="image") as bar:
        for start in range(0, len(to_read), batch):
            chunk = to_read[start : start + batch]
            for uri, payload in zip(chunk, fetcher.read_all(chunk), strict=True):
                result.by_uri[uri] = _add(result, encoded, uri, payload)
            bar.update(len(chunk))
    return result


def _add(
    result: ThumbnailSet, encoded: dict[bytes, str], uri: str, payload: bytes | ReadFailure
) -> Thumbnail:
    """One image's Thumbnail, its data URI added to `result` while the budget lasts."""
    if isinstance(payload, ReadFailure):
        log.info("thumbnail of %s: %s", uri, payload)
        return Thumbnail(reason=payload.reason)
    try:
        jpeg = thumbnail_jpeg(payload)
    except ValueError as exc:
        return Thumbnail(reason=f"{CORRUPT}: {exc}"[:200])
    if jpeg in encoded:
        return Thumbnail(css_class=encoded[jpeg])
    data_uri = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")
    if result.used_bytes + len(data_uri) > result.max_bytes:
        result.left_out += 1
        return Thumbnail(reason=OVER_CAP)
    css_class = f"th{len(result.data_uris)}"
    encoded[jpeg] = css_class
    result.data_uris[css_class] = data_uri
    result.used_bytes += len(data_uri)
    return Thumbnail(css_class=css_class)
