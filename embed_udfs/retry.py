"""One way to retry: exponential backoff until an attempt count or a deadline,
for the errors a predicate says are worth another try. The policies of the
project (database reconnects, HTTP answers that say "later") live here too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import psycopg

from embed_udfs.errors import DatabaseError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Wait first_delay_s, then twice that, ... up to max_delay_s between attempts;
    give up after max_attempts, or when the next wait would end past deadline_s
    from the first attempt."""

    first_delay_s: float = 0.5
    max_delay_s: float = 5.0
    deadline_s: float = 60.0
    max_attempts: int | None = None

    def with_deadline(self, deadline_s: float) -> Backoff:
        return replace(self, deadline_s=deadline_s)


# A lost database connection: the server restarting takes seconds, so keep
# trying for a minute (vars.db_retry_deadline_s) before the run gives up.
DB_RECONNECT = Backoff(first_delay_s=0.5, max_delay_s=5.0, deadline_s=60.0)
# An HTTP answer of 5xx, 429 or 408: the server is there and asks to come back.
# A host that cannot be reached at all is not retried within the run; the
# next run tries it again.
HTTP_ANSWER = Backoff(first_delay_s=0.5, max_delay_s=2.0, deadline_s=5.0, max_attempts=2)


class RetriesExhausted(Exception):
    """Every attempt failed; the last error is the cause."""

    def __init__(self, attempts: int, elapsed_s: float, last: BaseException):
        super().__init__(f"{last} (after {attempts} attempts in {elapsed_s:.1f}s)")
        self.attempts, self.elapsed_s, self.last = attempts, elapsed_s, last


def retry_call(
    fn: Callable[[], T],
    policy: Backoff,
    retry_if: Callable[[BaseException], bool],
    *,
    on_retry: Callable[[BaseException, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """fn(), tried again after errors that retry_if accepts; others propagate at once.

    on_retry(error, delay) runs before each wait (to reset a connection, count,
    or log). Raises RetriesExhausted when the policy gives up.
    """
    started = time.monotonic()
    delay = policy.first_delay_s
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not retry_if(exc):
                raise
            elapsed = time.monotonic() - started
            out_of_attempts = policy.max_attempts is not None and attempt >= policy.max_attempts
            if out_of_attempts or elapsed + delay > policy.deadline_s:
                raise RetriesExhausted(attempt, elapsed, exc) from exc
            if on_retry is not None:
                on_retry(exc, delay)
            sleep(delay)
            delay = min(delay * 2, policy.max_delay_s)


# SQLSTATE 08xxx: connection exceptions; 57P01-57P03: the server is shutting
# down, crashed, or is still starting up (what a restart looks like).
_CONNECTION_STATES = ("57P01", "57P02", "57P03")


def is_connection_error(exc: BaseException) -> bool:
    """True for a lost or refused database connection, including a failed reconnect."""
    if isinstance(exc, DatabaseError) and exc.__cause__ is not None:
        return is_connection_error(exc.__cause__)  # db.connect wraps the driver's error
    if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith("08") or state in _CONNECTION_STATES
