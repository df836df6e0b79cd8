# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""DaemonSetApi's calls through an API server that goes away: a scripted stand-in of the dynamic client, a fake clock."""

from __future__ import annotations

import json

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import api as api_module
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import retry
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError

DAEMONSET = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "puller", "namespace": "ns", "resourceVersion": "7"}}


class Refused(retry.Urllib3Error):
    """Shaped like urllib3's MaxRetryError for a refused connection (the test runs with or without urllib3)."""

    def __init__(self):
        super().__init__("Max retries exceeded with url: /apis/apps/v1")
        self.reason = ConnectionRefusedError(111, "Connection refused")


def refused():
    return Refused()


def http_error(status, reason=""):
    """An error as the dynamic client raises it (DynamicApiError when the kubernetes client is installed)."""
    error = api_module.DynamicApiError.__new__(api_module.DynamicApiError)
    Exception.__init__(error, f"({status}) Reason: {reason}")
    error.status, error.reason, error.body, error.headers = status, reason, None, None
    return error


class Answer:
    def __init__(self, obj):
        self.data = json.dumps(obj).encode()

    def to_dict(self):
        return json.loads(self.data)


class Discovery:
    """kubernetes.core's discovery cache, knowing apps/v1 (DaemonSetApi's one API group): the lookups never miss it."""

    @staticmethod
    def parse_api_groups(request_resources=False):
        return {"apis": {"apps": {"v1": object()}}}


class Dynamic:
    """Each call takes the next scripted outcome: an exception to raise, or an object to answer with."""

    resources = Discovery()

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def _next(self):
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return Answer(outcome)

    def get(self, *args, **kwargs):
        return self._next()

    def server_side_apply(self, *args, **kwargs):
        return self._next()

    def watch_events(self, *args, **kwargs):
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        yield from outcome


class Client:
    dry_run = False

    def __init__(self, dynamic):
        self.client = dynamic

    def resource(self, kind, api_version):
        return f"{api_version}/{kind}"


class FakeTime:
    def __init__(self):
        self.now = 0.0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def make(dynamic, timeout=60):
    fake = FakeTime()
    retrier = retry.Retrier(deadline=timeout, clock=fake.clock, sleep=fake.sleep, wall_clock=lambda: 1796220000.0 + fake.now)
    api = api_module.DaemonSetApi(Client(dynamic), namespace="ns", name="puller", retrier=retrier)
    api._watch_events = dynamic.watch_events  # pylint: disable=protected-access  # the scripted stream
    return api, fake


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        pytest.param([DAEMONSET], DAEMONSET, id="an answer at once"),
        pytest.param([refused(), refused(), DAEMONSET], DAEMONSET, id="refused twice (a restart), then the answer"),
        pytest.param([http_error(503, "Service Unavailable"), http_error(429), DAEMONSET], DAEMONSET, id="503 and 429, then the answer"),
        pytest.param([http_error(404, "Not Found")], None, id="404 is no DaemonSet, not an outage"),
    ],
)
def test_get_rides_through_transient_failures(outcomes, expected):
    api, _fake = make(Dynamic(*outcomes))
    assert api.get() == expected


def test_an_apply_during_a_longer_outage_fails_naming_the_action_and_since_when():
    api, fake = make(Dynamic(*[refused()] * 40), timeout=30)
    with pytest.raises(retry.Unreachable) as raised:
        api.apply(DAEMONSET)
    assert raised.value.msg == ("DaemonSet ns/puller: could not apply it (server-side apply): the API server could not be reached "
                                "since 14:00:00 UTC (30s, until the timeout ran out); last error: connection refused")
    assert fake.now == 30


def test_a_refusal_by_the_api_is_not_retried():
    api, fake = make(Dynamic(http_error(403, "Forbidden")))
    with pytest.raises(ImagePullerError, match="could not apply it"):
        api.apply(DAEMONSET)
    assert fake.now == 0


@pytest.mark.parametrize(
    ("failure", "paused"),
    [
        pytest.param(refused(), api_module.BROKEN_WATCH_PAUSE, id="a dropped watch pauses before the caller reads again"),
        pytest.param(http_error(410, "Gone"), 0, id="410 Gone only means read again, at once"),
    ],
)
def test_a_broken_watch_ends_quietly(failure, paused):
    api, fake = make(Dynamic(failure))
    assert not list(api.watch_daemonset("7", 10))
    assert fake.now == paused
