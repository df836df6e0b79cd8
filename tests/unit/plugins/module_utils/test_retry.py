# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Retrying through an API server that goes away: a fake clock whose sleep advances it, so no test waits."""

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import client, retry
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError

# 2026-12-02 14:00:00 UTC
WALL_START = 1796220000.0


class ApiError(Exception):
    """Shaped like kubernetes' ApiException / DynamicApiError: status, reason, headers."""

    def __init__(self, status, reason="", headers=None):
        super().__init__(f"({status}) Reason: {reason}")
        self.status, self.reason, self.headers = status, reason, headers


class MaxRetryError(retry.Urllib3Error):
    """Shaped like urllib3's (the test runs with or without urllib3): the underlying error in reason."""

    def __init__(self, reason):
        super().__init__(f"Max retries exceeded with url: /apis/apps/v1 (Caused by {reason!r})")
        self.reason = reason


class ProtocolError(retry.Urllib3Error):
    """Shaped like urllib3's: a connection dropped mid-answer."""


def refused():
    return MaxRetryError(ConnectionRefusedError(111, "Failed to establish a new connection: [Errno 111] Connection refused"))


class FakeTime:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def wall(self):
        return WALL_START + self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make(timeout, fake):
    return retry.Retrier(deadline=fake.now + timeout, clock=fake.clock, sleep=fake.sleep, wall_clock=fake.wall)


def failing(*outcomes):
    """A call that raises (or returns) the outcomes in turn."""
    left = list(outcomes)

    def call():
        outcome = left.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return call


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        pytest.param(refused(), True, id="a refused connection is transient"),
        pytest.param(ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer")), True,
                     id="a connection reset mid-answer is transient"),
        pytest.param(ConnectionResetError(104, "Connection reset by peer"), True, id="a bare reset socket is transient"),
        pytest.param(ApiError(429, "Too Many Requests"), True, id="429 is transient"),
        pytest.param(ApiError(500), True, id="500 is transient"),
        pytest.param(ApiError(503, "Service Unavailable"), True, id="503 is transient"),
        pytest.param(ApiError(504), True, id="504 is transient"),
        pytest.param(ApiError(0, "Connection broken"), True, id="status 0 (a broken watch stream) is transient"),
        pytest.param(ApiError(403, "Forbidden"), False, id="403 is not transient"),
        pytest.param(ApiError(404), False, id="404 is not transient"),
        pytest.param(ApiError(409), False, id="409 is not transient"),
        pytest.param(ApiError(422), False, id="422 is not transient"),
        pytest.param(MaxRetryError(retry.SSLError("certificate verify failed")), False,
                     id="a certificate that does not verify is not transient"),
        pytest.param(ValueError("bad"), False, id="a programming error is not transient"),
        pytest.param(FileNotFoundError("ca.crt"), False, id="a missing file is not transient"),
        pytest.param(retry.Starting("the API server is starting"), True, id="a server still registering its APIs is transient"),
    ],
)
def test_is_transient(exc, transient):
    assert retry.is_transient(exc) is transient


def test_an_answer_at_once_is_returned_without_sleeping():
    fake = FakeTime()
    assert make(30, fake).call("could not read it", failing("ok")) == "ok"
    assert fake.sleeps == []


def test_an_api_server_back_after_a_restart_is_waited_for_with_growing_pauses():
    fake = FakeTime()
    outcomes = [refused(), refused(), ApiError(503), refused(), refused(), refused(), "ok"]
    assert make(60, fake).call("could not read it", failing(*outcomes)) == "ok"
    assert fake.sleeps == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_retry_after_of_a_429_is_honoured_but_capped():
    fake = FakeTime()
    outcomes = [ApiError(429, headers={"Retry-After": "3"}), ApiError(429, headers={"Retry-After": "3600"}), "ok"]
    assert make(60, fake).call("could not read it", failing(*outcomes)) == "ok"
    assert fake.sleeps == [3.0, retry.MAX_RETRY_AFTER]


def test_an_outage_longer_than_the_timeout_fails_saying_since_when():
    fake = FakeTime()
    fake.now = 12.0
    with pytest.raises(retry.Unreachable) as raised:
        make(20, fake).call("DaemonSet ns/puller: could not read it", failing(*[refused()] * 50))
    assert fake.now == 32.0, "gave up exactly at the deadline"
    assert raised.value.msg == ("DaemonSet ns/puller: could not read it: the API server could not be reached since 14:00:12 UTC "
                                "(20s, until the timeout ran out); last error: connection refused")
    assert isinstance(raised.value, ImagePullerError)


@pytest.mark.parametrize("exc", [ApiError(403, "Forbidden"), ValueError("bad")], ids=["an API refusal", "a programming error"])
def test_other_errors_go_to_the_caller_at_once(exc):
    fake = FakeTime()
    with pytest.raises(type(exc)):
        make(60, fake).call("could not read it", failing(exc, "ok"))
    assert fake.sleeps == []


def test_no_time_left_means_no_retry():
    fake = FakeTime()
    with pytest.raises(retry.Unreachable, match="last error: HTTP 503 Service Unavailable"):
        make(0, fake).call("could not read it", failing(ApiError(503, "Service Unavailable"), "ok"))
    assert fake.sleeps == []


def test_an_outage_ends_when_the_server_answers_and_a_new_one_has_its_own_start():
    fake = FakeTime()
    retrier = make(100, fake)
    retrier.call("could not read it", failing(refused(), "ok"))
    assert retrier.failing_since is None
    fake.now = 50.0
    retrier.failed(refused())
    assert retrier.failing_since == (50.0, WALL_START + 50.0)


class StartingServer:
    """Shaped like kubernetes.core's K8SClient (resource(), client.request(), client.resources) for a server that lists
    its APIs late.

    discovery: per call of resource(), whether the kind is listed; readyz: per /readyz request, an exception or None
    (200); cached: whether kubernetes.core's discovery cache knows the group version; served: per request of
    /apis/<group>/<version> (asked when the cache does not know it), an exception or None (200).
    """

    def __init__(self, discovery, readyz, *, cached=True, served=()):
        self.discovery, self.readyz, self.served = list(discovery), list(readyz), list(served)
        self.cached = cached
        self.client = self
        self.resources = self
        self.requests = []

    def resource(self, kind, api_version):
        if not self.discovery.pop(0):
            raise client.ResourceNotFoundError(f"No matches found for {kind} {api_version}")
        return f"{api_version}/{kind}"

    def parse_api_groups(self, request_resources=False):
        assert not request_resources
        return {"apis": {"apps": {"v1": object()}} if self.cached else {"batch": {"v1": object()}}}

    def request(self, method, path, **_params):
        self.requests.append((method, path))
        outcome = (self.readyz if path == "/readyz" else self.served).pop(0)
        if outcome is not None:
            raise outcome


@pytest.mark.parametrize(
    ("discovery", "readyz", "found", "sleeps"),
    [
        pytest.param([True], [], "apps/v1/DaemonSet", [], id="listed: no readyz asked"),
        pytest.param([False], [None], None, [], id="not listed by a ready server: not served"),
        pytest.param([False], [ApiError(403, "Forbidden")], None, [], id="not listed, readyz forbidden: believed"),
        pytest.param([False], [ApiError(404)], None, [], id="not listed, no readyz: believed"),
        pytest.param([False, False, True], [ApiError(500), ApiError(503)], "apps/v1/DaemonSet", [0.5, 1.0],
                     id="not listed while starting: waited for until listed"),
        pytest.param([False, False], [refused(), None], None, [0.5],
                     id="readyz refused: an outage, then a ready server that does not list it"),
    ],
)
def test_discovery_during_a_start_is_waited_out(discovery, readyz, found, sleeps):
    fake = FakeTime()
    server = StartingServer(discovery, readyz)
    assert make(60, fake).call("could not discover", lambda: client.discover(server, "DaemonSet", "apps/v1")) == found
    assert fake.sleeps == sleeps
    assert server.discovery == [] and server.readyz == []
    assert all(request == ("get", "/readyz") for request in server.requests)


@pytest.mark.parametrize(
    ("served", "discovery", "readyz", "found", "requests"),
    [
        pytest.param([ApiError(404)], [], [None], None, ["/apis/apps/v1", "/readyz"],
                     id="not served, said by one request: the cache is not thrown away"),
        pytest.param([None], [True], [], "apps/v1/DaemonSet", ["/apis/apps/v1"], id="served since the cache was written: looked up"),
        pytest.param([ApiError(403, "Forbidden")], [False], [None], None, ["/apis/apps/v1", "/readyz"],
                     id="the group's discovery forbidden: the lookup decides"),
        pytest.param([ApiError(404), None], [True], [ApiError(503)], "apps/v1/DaemonSet", ["/apis/apps/v1", "/readyz", "/apis/apps/v1"],
                     id="not served while starting: waited for until served"),
    ],
)
def test_a_group_version_the_discovery_cache_lacks_is_asked_for_directly(served, discovery, readyz, found, requests):
    fake = FakeTime()
    server = StartingServer(discovery, readyz, cached=False, served=served)
    assert make(60, fake).call("could not discover", lambda: client.discover(server, "DaemonSet", "apps/v1")) == found
    assert [path for _method, path in server.requests] == requests
    assert server.discovery == [] and server.readyz == [] and server.served == []


def test_a_server_that_never_gets_ready_fails_at_the_deadline_saying_why():
    fake = FakeTime()
    server = StartingServer([False] * 20, [ApiError(500)] * 20)
    with pytest.raises(ImagePullerError) as caught:
        make(10, fake).call("could not discover DaemonSet (apps/v1)", lambda: client.discover(server, "DaemonSet", "apps/v1"))
    assert "the API server is starting and lists no DaemonSet (apps/v1) yet" in caught.value.msg
