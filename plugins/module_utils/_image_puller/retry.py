# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Riding through an API server that goes away: which failures to retry, and for how long.

An API server restarting refuses or resets connections, and one under load
answers 429 or 5xx; all of these pass. Each call that fails so is tried again
with a growing pause (capped) until the deadline of the whole task, which then
fails saying since when the API server could not be reached. Every other
error (forbidden, invalid, not found) is the caller's to handle at once.

The clock and the sleep are parameters, so the tests need neither a server nor time.
"""

from __future__ import annotations

import datetime
import http.client
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError

try:
    from urllib3.exceptions import HTTPError as Urllib3Error
    from urllib3.exceptions import SSLError
except ImportError:  # urllib3 comes with the kubernetes client, which AnsibleK8SModule checks for
    class Urllib3Error(Exception):  # type: ignore[no-redef]
        """Stand-in when urllib3 is missing."""

    class SSLError(Urllib3Error):  # type: ignore[no-redef]
        """Stand-in when urllib3 is missing."""

# 429 Too Many Requests and the server-side failures a restart or an overload shows.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
FIRST_PAUSE = 0.5
MAX_PAUSE = 5.0
# A Retry-After longer than this is not believed: the deadline, not the server, decides when to give up.
MAX_RETRY_AFTER = 10.0

T = TypeVar("T")


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an API error, or None when it is not one."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


class Starting(Exception):
    """The API server answers but is not ready yet: discovery may lack API groups it registers after a start."""


def is_transient(exc: BaseException) -> bool:
    """Whether waiting can cure this failure: no connection, a dropped one, 429 or 5xx, a server still starting.

    An ApiException with status 0 is what the client raises when a watch stream
    breaks; a ConnectionError is a refused or reset socket that escaped urllib3.
    A certificate that does not verify stays wrong however long one waits.
    """
    if isinstance(exc, Starting):
        return True
    status = status_of(exc)
    if status is not None:
        return status == 0 or status in TRANSIENT_STATUSES
    if isinstance(exc, SSLError) or isinstance(getattr(exc, "reason", None), SSLError):
        return False
    return isinstance(exc, (Urllib3Error, ConnectionError, TimeoutError, http.client.HTTPException))


def retry_after(exc: BaseException) -> float | None:
    """The pause a 429 or 503 asks for (Retry-After in seconds), if any."""
    headers = getattr(exc, "headers", None) or {}
    try:
        value = headers.get("Retry-After") or headers.get("retry-after")
        return min(MAX_RETRY_AFTER, max(0.0, float(value))) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def short_reason(exc: BaseException) -> str:
    """What went wrong in one line, without the client's nested repr chains."""
    if isinstance(exc, Starting):
        return str(exc)
    status = status_of(exc)
    if status:
        return f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
    reason = getattr(exc, "reason", None)  # urllib3's MaxRetryError keeps the underlying error here
    text = str(reason or exc)
    for known in ("Connection refused", "Connection reset by peer", "Connection aborted", "timed out", "Remote end closed connection"):
        if known in text:
            return known.lower() if known != "Connection refused" else "connection refused"
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _utc(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc).strftime("%H:%M:%S UTC")


class Unreachable(ImagePullerError):
    """The API server failed transiently until the deadline."""


class Retrier:
    """Calls a function, retrying transient failures with back-off until a deadline (a clock() value)."""

    def __init__(self, *, deadline: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.deadline = deadline
        self.clock = clock
        self.sleep = sleep
        self.wall_clock = wall_clock
        # when the current outage began (clock and wall time), None while the server answers
        self.failing_since: tuple[float, float] | None = None
        self.last_error = ""

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def ok(self) -> None:
        """The server answered: an outage, if any, is over."""
        self.failing_since = None

    def failed(self, exc: BaseException) -> None:
        """Note a transient failure (also for failures the caller handles itself, such as a broken watch)."""
        if self.failing_since is None:
            self.failing_since = (self.clock(), self.wall_clock())
        self.last_error = short_reason(exc)

    def unreachable(self, what: str) -> Unreachable:
        """The error to raise when the deadline has come during an outage; what: 'could not ...'."""
        began, wall = self.failing_since or (self.clock(), self.wall_clock())
        seconds = max(0, round(self.clock() - began))
        return Unreachable(f"{what}: the API server could not be reached since {_utc(wall)} ({seconds}s, "
                           f"until the timeout ran out); last error: {self.last_error}", unreachable_since=_utc(wall))

    def call(self, what: str, function: Callable[[], T]) -> T:
        """function(), retried while it fails transiently and time remains; what ('could not ...') heads the error."""
        pause = FIRST_PAUSE
        while True:
            try:
                value = function()
            except Exception as exc:  # pylint: disable=broad-exception-caught
                if not is_transient(exc):
                    raise
                self.failed(exc)
                left = self.remaining()
                if left <= 0:
                    raise self.unreachable(what) from exc
                wanted = retry_after(exc)
                self.sleep(min(left, wanted if wanted is not None else pause))
                pause = min(MAX_PAUSE, pause * 2)
                continue
            self.ok()
            return value
