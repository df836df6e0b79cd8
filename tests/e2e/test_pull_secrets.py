# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pull Secrets from registry credentials, on the real node (real-node-0).

The real kubelet pulls an image that only the private registry (basic authentication) holds,
with the Secret the role made from the credentials; the public playbooks run at -vvv with
--diff and their output never holds the password, nor base64 of it, of user:password or of the
docker config.
"""
from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from test_real_node import NODE, node, on_real_node, puller_pod, statuses  # noqa: F401  pylint: disable=unused-import

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
SECRET = "cache-pull-127-0-0-1-{port}"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def run(env: dict, tmp: Path, name: str, variables: dict, *args: str) -> subprocess.CompletedProcess:
    extra = tmp / f"{name}-{uuid.uuid4().hex[:6]}.yml"
    extra.write_text(yaml.safe_dump({f"image_puller_{key}": value for key, value in variables.items()}))
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), f"kip.image_puller.{name}", "-e", f"@{extra}", "-e", f"ansible_python_interpreter={sys.executable}", *args],
        env={**env, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"},
        capture_output=True, text=True, check=False, timeout=600)


def leaks(proc: subprocess.CompletedProcess, secrets: list[str]) -> list[str]:
    out = proc.stdout + proc.stderr
    return [secret for secret in secrets if secret in out]


def recap(proc: subprocess.CompletedProcess) -> str:
    return next(line for line in proc.stdout.splitlines() if line.startswith("localhost") and "changed=" in line)


def test_the_kubelet_pulls_with_the_secret_made_from_credentials_which_never_show(node, kubectl, cluster_env, tmp_path):  # noqa: F811
    password = node.private_password()
    private = f"{node.private_registry}/kip-test/private:1"
    name = SECRET.format(port=node.private_registry.rsplit(":", 1)[1])
    # the role does not create (so remove keeps) this namespace; a Secret of someone else's lives in it
    namespace = f"e2e-pull-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    kubectl.run("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kubectl.run("create", "secret", "generic", "not-ours", "-n", namespace, "--from-literal=k=v")
    try:
        credentials = [{"registry": node.private_registry, "username": "kip-test", "password": password}]
        variables = on_real_node(node, namespace, [{"name": "private", "image": private}],
                                 registry_credentials=credentials, create_namespace=False)
        config = json.dumps({"auths": {node.private_registry: {"auth": b64(f"kip-test:{password}"),
                                                               "password": password, "username": "kip-test"}}},
                            sort_keys=True, separators=(",", ":"))
        hidden = [password, b64(password), b64(f"kip-test:{password}"), b64(config)]

        first = run(cluster_env, tmp_path, "deploy", variables, "-vvv", "--diff")
        assert first.returncode == 0, first.stdout[-6000:]
        assert not leaks(first, hidden), "a credential shows in the output of the first deploy"
        assert f"pull Secrets made from image_puller_registry_credentials: {name} ({node.private_registry})" in first.stdout
        assert '".dockerconfigjson": "(masked, changed)"' in first.stdout, "the diff shows the Secret, masked"

        made = kubectl.json("get", "secret", name, "-n", namespace)
        assert made["type"] == "kubernetes.io/dockerconfigjson"
        assert json.loads(base64.b64decode(made["data"][".dockerconfigjson"])) == json.loads(config)
        pod = puller_pod(kubectl, namespace)
        assert pod["spec"]["imagePullSecrets"] == [{"name": name}]
        assert statuses(pod)["private"]["ready"], "the real kubelet pulled the private image with the Secret"
        assert node.stored_digests(private), f"{private} is not in {NODE}'s image store"

        again = run(cluster_env, tmp_path, "deploy", variables, "-vvv", "--diff")
        assert again.returncode == 0, again.stdout[-6000:]
        assert "changed=0" in recap(again), recap(again)
        assert not leaks(again, hidden), "a credential shows in the output of the second deploy"

        # check mode with other credentials: the diff says the data changes, and shows neither value
        other = [{"registry": node.private_registry, "username": "kip-test", "password": "an-0ther-pw"}]
        check = run(cluster_env, tmp_path, "deploy", {**variables, "registry_credentials": other}, "-vvv", "--diff", "--check")
        assert check.returncode == 0, check.stdout[-6000:]
        assert '".dockerconfigjson": "(masked, changed)"' in check.stdout
        assert not leaks(check, hidden + ["an-0ther-pw", b64("kip-test:an-0ther-pw")])
        assert kubectl.json("get", "secret", name, "-n", namespace)["data"] == made["data"], "check mode changed the Secret"

        removed = run(cluster_env, tmp_path, "remove", {"namespace": namespace, "daemonset_name": "cache",
                                                        "create_namespace": False, "wait_timeout": 150}, "-vvv")
        assert removed.returncode == 0, removed.stdout[-6000:]
        assert not leaks(removed, hidden), "a credential shows in the output of remove"
        assert kubectl.run("get", "secret", name, "-n", namespace, check=False).returncode != 0, "remove left the pull Secret"
        assert kubectl.run("get", "secret", "not-ours", "-n", namespace, check=False).returncode == 0, "remove deleted a foreign Secret"
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def test_credentials_compose_with_the_jarvice_secret_change_without_a_roll_and_never_take_a_foreign_secret(kubectl, cluster_env, tmp_path):
    """On the kwok nodes: a Secret of the derived name that is not the role's stops the deploy before any
    change; the jarvice config's Secret name and the made ones add up; new credentials update the Secret
    without rolling the pods; a registry no longer listed loses its Secret."""
    namespace = f"e2e-pull-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", namespace)
    kubectl.run("create", "secret", "generic", "jarvice-pull-registry-example-com", "-n", namespace, "--from-literal=k=v")
    # its images name only amd64: one DaemonSet, jarvice-amd64, whose pull Secrets are labelled with the instance, jarvice
    seed = Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "seeds" / "002-jarvice-configmap-single-arch.yaml"
    passwords = ["first-" + uuid.uuid4().hex, "second-" + uuid.uuid4().hex, "ghcr-" + uuid.uuid4().hex]

    def variables(password, *more):
        return {"config": str(seed), "daemonset_name": "jarvice", "namespace": namespace, "create_namespace": False,
                "wait_timeout": 120, "registry_credentials": [
                    {"registry": "registry.example.com", "username": "u", "password": password}, *more]}

    ghcr = {"docker_config": json.dumps({"auths": {"ghcr.io": {"username": "g", "password": passwords[2]}}})}
    try:
        refused = run(cluster_env, tmp_path, "deploy", variables(passwords[0], ghcr), "--diff")
        assert refused.returncode != 0
        assert "Secret/" + namespace + "/jarvice-pull-registry-example-com exists and was not made by kip.image_puller" in refused.stdout
        assert kubectl.json("get", "secret", "jarvice-pull-registry-example-com", "-n", namespace)["data"] == {"k": b64("v")}
        assert kubectl.run("get", "daemonset,configmap,secret/jarvice-pull-ghcr-io", "-n", namespace, "-o", "name",
                           check=False).stdout.strip() == "", "the refused deploy changed something"
        kubectl.run("delete", "secret", "jarvice-pull-registry-example-com", "-n", namespace)

        first = run(cluster_env, tmp_path, "deploy", variables(passwords[0], ghcr))
        assert first.returncode == 0, first.stdout[-6000:]
        ds = kubectl.json("get", "daemonset", "jarvice-amd64", "-n", namespace)
        assert ds["spec"]["template"]["spec"]["imagePullSecrets"] == [
            {"name": "jarvice-docker"}, {"name": "jarvice-pull-registry-example-com"}, {"name": "jarvice-pull-ghcr-io"}]
        before = kubectl.json("get", "secret", "jarvice-pull-registry-example-com", "-n", namespace)["data"]

        changed = run(cluster_env, tmp_path, "deploy", variables(passwords[1], ghcr), "--diff", "-v")
        assert changed.returncode == 0, changed.stdout[-6000:]
        assert "changed=0" not in recap(changed)
        assert not leaks(changed, passwords + [b64(f"u:{p}") for p in passwords])
        after = kubectl.json("get", "secret", "jarvice-pull-registry-example-com", "-n", namespace)["data"]
        assert after != before and passwords[1] in base64.b64decode(after[".dockerconfigjson"]).decode()
        assert kubectl.json("get", "daemonset", "jarvice-amd64", "-n", namespace)["metadata"]["generation"] == ds["metadata"]["generation"], \
            "new credentials rolled the pods"

        dropped = run(cluster_env, tmp_path, "deploy", variables(passwords[1]))
        assert dropped.returncode == 0, dropped.stdout[-6000:]
        assert kubectl.run("get", "secret", "jarvice-pull-ghcr-io", "-n", namespace, check=False).returncode != 0
        assert kubectl.run("get", "secret", "jarvice-pull-registry-example-com", "-n", namespace, check=False).returncode == 0
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)
