# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for tests against the real local cluster (tests/cluster, `make cluster`).

Nothing here mocks the Kubernetes API: every fixture talks to the cluster whose
kubeconfig `tests/cluster/cluster.sh kubeconfig` prints.
"""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from support import REPO, wait_for

CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"
BUILD_SH = REPO / "tests" / "cluster" / "build.sh"


def _cluster_paths() -> dict[str, str]:
    out = subprocess.run([str(BUILD_SH), "paths"], check=True, capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    path = subprocess.run([str(CLUSTER_SH), "kubeconfig"], check=True, capture_output=True, text=True).stdout.strip()
    if not Path(path).is_file():
        pytest.fail(f"the local cluster is not running (no {path}); start it with `make cluster`")
    return path


@pytest.fixture(scope="session")
def cluster_env(kubeconfig: str) -> dict[str, str]:
    """Environment for subprocesses: the local cluster only, never the user's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("K8S_AUTH_")}
    paths = _cluster_paths()
    env["KUBECONFIG"] = kubeconfig
    env["K8S_AUTH_KUBECONFIG"] = kubeconfig
    env["PATH"] = os.pathsep.join([paths["K8S_BIN"], env.get("PATH", "")])
    return env


class Kubectl:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def run(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["kubectl", *args], input=stdin, env=self.env, capture_output=True, text=True, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def json(self, *args: str) -> dict:
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, manifest: dict | str, *args: str) -> subprocess.CompletedProcess:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run("apply", "-f", "-", *args, stdin=text)


@pytest.fixture(scope="session")
def kubectl(cluster_env: dict[str, str]) -> Kubectl:
    return Kubectl(cluster_env)


@pytest.fixture()
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest):
    """A fresh namespace (with its default ServiceAccount in place), deleted afterwards."""
    prefix = getattr(request, "param", None) or "e2e"
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    wait_for(lambda: kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             timeout=30, what=f"the default ServiceAccount of namespace {name}")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(name="restricted")
def fixture_restricted(kubectl):
    """A fresh namespace e2e-ds-*, enforcing PodSecurity restricted as the role's namespaces do; deleted afterwards."""
    name = f"e2e-ds-{uuid.uuid4().hex[:8]}"
    kubectl.apply({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    wait_for(lambda: kubectl.run("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
             timeout=30, what=f"the default ServiceAccount of namespace {name}")
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)
