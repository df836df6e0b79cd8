# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""image_puller_daemonset and the quota pre-flight when things go wrong around them: the API server restarts, two deploys race,
a deploy is interrupted.

The API server is the local cluster's real kube-apiserver process, killed and
started again with the same command line (tests/cluster/cluster.sh
apiserver-stop / apiserver-start). minReadySeconds keeps each rollout open long
enough for the outage to fall inside the wait.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTER_SH
from support import wait_for
from test_daemonset_module import NAME, daemonset

pytestmark = [pytest.mark.cluster, pytest.mark.outage]

ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# Long enough that the rollout is still open when the API server goes away, short enough for a test.
MIN_READY_SECONDS = 15


def slow_daemonset(namespace: str, *images: str) -> dict:
    definition = daemonset(namespace, *images)
    definition["spec"]["minReadySeconds"] = MIN_READY_SECONDS
    return definition


class Deploy:
    """One ansible-playbook run of image_puller_daemonset (or of another module of the collection), started in the background."""

    def __init__(self, env: dict, workdir: Path, module: str = "image_puller_daemonset", **params):
        playbook = workdir / f"deploy-{uuid.uuid4().hex[:8]}.yml"
        playbook.write_text(yaml.safe_dump([{
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [{"name": module, f"kip.image_puller.{module}": params}],
        }]))
        self.started = time.monotonic()
        self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.stdout = self.stderr = ""
        self.result: dict = {}

    def finish(self, timeout: float = 300) -> Deploy:
        self.stdout, self.stderr = self.proc.communicate(timeout=timeout)
        self.elapsed = time.monotonic() - self.started
        if self.stdout.strip():
            self.result = json.loads(self.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
        return self

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    def images(self) -> list:
        containers = self.result["result"]["spec"]["template"]["spec"]["containers"]
        return [c["image"] for c in containers]


@pytest.fixture(name="deploy")
def fixture_deploy(cluster_env, tmp_path):
    env = {key: value for key, value in cluster_env.items() if key != "KUBECONFIG"}
    env.update(ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    started = []

    def start(**params) -> Deploy:
        run = Deploy(env, tmp_path, **params)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.wait()


@pytest.fixture(name="apiserver")
def fixture_apiserver(cluster_env):
    """stop() and start() the cluster's kube-apiserver; it is always running again after the test."""

    def call(verb: str) -> None:
        proc = subprocess.run([str(CLUSTER_SH), f"apiserver-{verb}"], env=cluster_env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"cluster.sh apiserver-{verb} failed: {proc.stderr}"

    class Control:
        stopped = False

        def stop(self):
            call("stop")
            self.stopped = True

        def start(self):
            call("start")
            self.stopped = False

    control = Control()
    yield control
    if control.stopped:
        control.start()


def daemonset_exists(kubectl, namespace):
    return kubectl.run("get", "daemonset", NAME, "-n", namespace, check=False).returncode == 0


def test_a_wait_rides_through_an_api_server_restart_and_succeeds(deploy, apiserver, kubectl, restricted):
    run = deploy(definition=slow_daemonset(restricted, "registry.example/java:17"), wait_timeout=240)
    wait_for(lambda: daemonset_exists(kubectl, restricted), timeout=60, what="the DaemonSet to be applied")
    time.sleep(2)
    apiserver.stop()
    time.sleep(10)
    apiserver.start()
    run.finish()
    assert not run.failed, run.result.get("msg") or run.stderr
    assert run.result["summary"]["ready"] == run.result["summary"]["desired"] > 0
    assert "Traceback" not in run.stdout + run.stderr


def test_an_api_server_away_for_longer_than_the_wait_fails_saying_since_when(deploy, apiserver, kubectl, restricted):
    run = deploy(definition=slow_daemonset(restricted, "registry.example/java:17"), wait_timeout=20)
    wait_for(lambda: daemonset_exists(kubectl, restricted), timeout=60, what="the DaemonSet to be applied")
    apiserver.stop()
    run.finish(timeout=120)
    apiserver.start()
    assert run.failed
    assert "the API server could not be reached since" in run.result["msg"], run.result["msg"]
    assert run.result["unreachable_since"].endswith(" UTC")
    assert "Traceback" not in run.stdout + run.stderr
    assert run.elapsed < 60, "gave up at wait_timeout, not later"


def test_two_deploys_at_once_both_end_and_neither_claims_a_list_that_is_not_running(deploy, kubectl, restricted):
    first = deploy(definition=slow_daemonset(restricted, "registry.example/java:17"), wait_timeout=240)
    second = deploy(definition=slow_daemonset(restricted, "registry.example/python:3.12", "registry.example/go:1.26"), wait_timeout=240)
    runs = [first.finish(), second.finish()]
    running = [c["image"] for c in kubectl.json("get", "daemonset", NAME, "-n", restricted)["spec"]["template"]["spec"]["containers"]]
    succeeded = [run for run in runs if not run.failed]
    assert succeeded, [run.result.get("msg") for run in runs]
    for run in succeeded:
        assert run.images() == running, "a run reported success for a list that is not the one running"
    for run in runs:
        if run.failed:
            assert "another writer changed its pod template" in run.result["msg"], run.result["msg"]


def test_a_deploy_interrupted_half_way_converges_when_run_again(deploy, kubectl, restricted):
    definition = slow_daemonset(restricted, "registry.example/java:17", "registry.example/python:3.12")
    interrupted = deploy(definition=definition, wait_timeout=240)
    wait_for(lambda: daemonset_exists(kubectl, restricted), timeout=60, what="the DaemonSet to be applied")
    interrupted.proc.send_signal(signal.SIGINT)
    interrupted.proc.communicate(timeout=60)
    again = deploy(definition=definition, wait_timeout=240).finish()
    assert not again.failed, again.result.get("msg")
    summary = again.result["summary"]
    assert summary["ready"] == summary["updated"] == summary["available"] == summary["desired"] > 0
    assert again.images() == ["registry.example/java:17", "registry.example/python:3.12"]


def test_the_quota_preflight_rides_through_an_api_server_restart(deploy, apiserver, restricted):
    apiserver.stop()
    run = deploy(module="image_puller_quota", definition=daemonset(restricted, "registry.example/java:17"), wait_timeout=120)
    time.sleep(4)
    apiserver.start()
    run.finish(timeout=150)
    assert not run.failed, run.result.get("msg") or run.stderr
    assert run.result["fits"] is True and run.result["eligible_nodes"] > 0
    assert run.elapsed >= 4, "the run began while the API server was away, so it waited for it"
    assert "Traceback" not in run.stdout + run.stderr


def test_a_quota_preflight_that_cannot_reach_the_api_server_fails_saying_since_when(deploy, apiserver, restricted):
    apiserver.stop()
    run = deploy(module="image_puller_quota", definition=daemonset(restricted, "registry.example/java:17"), wait_timeout=4).finish(timeout=60)
    apiserver.start()
    assert run.failed
    assert "the API server could not be reached since" in run.result["msg"], run.result["msg"]
    assert run.result["unreachable_since"].endswith(" UTC")
    assert "Traceback" not in run.stdout + run.stderr and "MODULE FAILURE" not in run.stdout


def test_a_whole_deploy_in_one_run_rides_through_an_api_server_restart(deploy, apiserver, kubectl, restricted):
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": NAME}, "data": {"IMAGES": "java=registry.example/java:17;"}}
    apiserver.stop()
    run = deploy(definition=daemonset(restricted, "registry.example/java:17"), objects=[configmap], quota_check=True, wait_timeout=120)
    time.sleep(4)
    apiserver.start()
    run.finish(timeout=150)
    assert not run.failed, run.result.get("msg") or run.stderr
    assert run.result["quota"]["fits"] is True
    assert run.result["objects"] == [{"kind": "ConfigMap", "name": NAME, "namespace": restricted, "changed": True, "action": "created"}]
    assert kubectl.json("get", "configmap", NAME, "-n", restricted)["data"] == configmap["data"]
    assert run.result["summary"]["ready"] == run.result["summary"]["desired"] > 0
    assert "Traceback" not in run.stdout + run.stderr
