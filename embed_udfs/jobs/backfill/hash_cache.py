"""The input hashes of local image files, remembered by what `stat` says of the file
(path, size, modification and change times, inode) and the recipe, so that planning a
backfill reads and hashes only the files that changed since the last run.

It is a small SQLite file beside the project's other local state
(.embed_metrics/image_hashes.sqlite): the stat fields are this machine's, so the
cache is too. A file rewritten in place gets a new change time, and a replaced one a
new inode, so either is read again; a hit is a file nobody touched since it was hashed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

CACHE_FILE = Path(".embed_metrics") / "image_hashes.sqlite"  # under the project dir

_SCHEMA = """
create table if not exists image_hashes (
    recipe text not null,
    path text not null,
    size integer not null,
    mtime_ns integer not null,
    ctime_ns integer not null,
    inode integer not null,
    input_hash text not null,
    primary key (recipe, path)
)
"""

Key = tuple[str, str, int, int, int, int]  # recipe, path, size, mtime_ns, ctime_ns, inode


def local_path(uri: str) -> Path | None:
    """The file behind a local path or file:// URI; None for anything else."""
    parsed = urlsplit(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "":
        return Path(uri)
    return None


def file_key(recipe: str, uri: str) -> Key | None:
    """What the cache knows the file by, or None when it is no regular local file
    (those are read as before, and fail with their reason)."""
    path = local_path(uri)
    if path is None:
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    return (recipe, str(path), info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)


class ImageHashCache:
    """Look-ups from any thread (one SQLite connection each); writes from the caller's."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(
                self.path, timeout=60, check_same_thread=False
            )
        return conn

    def lookup(self, key: Key) -> str | None:
        row = (
            self._reader()
            .execute(
                "select input_hash from image_hashes where recipe = ? and path = ? and size = ? "
                "and mtime_ns = ? and ctime_ns = ? and inode = ?",
                key,
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    def remember(self, entries: Iterable[tuple[Key, str]]) -> int:
        rows = [(*key, digest) for key, digest in entries]
        if rows:
            with self._connect() as conn:
                conn.executemany(
                    "insert or replace into image_hashes values (?, ?, ?, ?, ?, ?, ?)", rows
                )
        return len(rows)
