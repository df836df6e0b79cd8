# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The role on the real node (real-node-0): a kubelet with containerd pulling from local registries.

Unlike the kwok nodes, this node really pulls: what these tests read is the node's own image
store (through its CRI socket with crictl), the digests the registry serves, and the processes
the containers run. Every run goes through the public playbooks, as a user runs them.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from support import REPO, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.real_node]

CLUSTER_SH = REPO / "tests" / "cluster" / "cluster.sh"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
NODE = "real-node-0"
TOLERATE_REAL_NODE = [{"key": "kip.test/real-node", "operator": "Exists", "effect": "NoSchedule"}]
ON_REAL_NODE = {"kip.test/real-node": "true"}
PULLER_UID = 65532


class RealNode:
    """The facts `cluster.sh real-node-env` prints, and what can be read on the node."""

    def __init__(self, facts: dict[str, str], env: dict[str, str]):
        self.facts, self.env = facts, env
        self.registry, self.private_registry = facts["REGISTRY"], facts["PRIVATE_REGISTRY"]

    def crictl(self, *args: str) -> str:
        cmd = [self.facts["CRICTL"], "--runtime-endpoint", self.facts["REAL_NODE_CRI"],
               "--image-endpoint", self.facts["REAL_NODE_CRI"], *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def stored_digests(self, ref: str) -> set[str]:
        """Manifest digests the node's image store holds under this reference (tag)."""
        repo = ref.rsplit(":", 1)[0]
        found = set()
        for image in json.loads(self.crictl("images", "-o", "json"))["images"]:
            if ref in (image.get("repoTags") or []):
                found |= {d.split("@", 1)[1] for d in image.get("repoDigests") or [] if d.startswith(repo + "@")}
        return found

    def image_tool(self, *args: str) -> str:
        cmd = [sys.executable, self.facts["IMAGE_TOOL"], *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    def registry_digest(self, name: str, tag: str) -> str:
        return self.image_tool("digest", "--registry", self.registry, name, tag)

    def move_tag(self, name: str, source: str, target: str) -> str:
        return self.image_tool("tag", "--registry", self.registry, name, source, target)

    def private_password(self) -> str:
        return Path(self.facts["PRIVATE_REGISTRY_PASSWORD_FILE"]).read_text(encoding="utf-8").strip()

    def processes(self, pod_name: str) -> list[dict]:
        """For each running container of the pod: its name, UID and command line, read in /proc."""
        pods = json.loads(self.crictl("pods", "--name", pod_name, "-o", "json"))["items"]
        assert pods, f"the node's runtime knows no pod {pod_name}"
        out = []
        for container in json.loads(self.crictl("ps", "--pod", pods[0]["id"], "-o", "json"))["containers"]:
            info = json.loads(self.crictl("inspect", container["id"]))["info"]
            status = Path(f"/proc/{info['pid']}/status").read_text(encoding="utf-8")
            uid = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
            cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes().split(b"\0")
            out.append({"name": container["metadata"]["name"], "uids": {int(u) for u in uid},
                        "cmdline": [part.decode() for part in cmdline if part]})
        return out


@pytest.fixture(scope="session")
def node(cluster_env) -> RealNode:
    out = subprocess.run([str(CLUSTER_SH), "real-node-env"], check=True, capture_output=True, text=True, env=cluster_env).stdout
    facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if not Path(facts["REAL_NODE_DIR"]).is_dir():
        if os.environ.get("CLUSTER_REAL_NODES") == "0":
            pytest.skip("the cluster was started without its real node (CLUSTER_REAL_NODES=0)")
        pytest.fail("the local cluster has no real node; start it with `make cluster`")
    return RealNode(facts, cluster_env)


class Playbook:
    """ansible-playbook kip.image_puller.<name> with role variables, as a user runs it."""

    def __init__(self, env: dict[str, str], tmp: Path):
        self.env = {**env, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"}
        self.tmp, self.runs = tmp, 0

    def __call__(self, name: str, *, check: bool = False, **variables) -> subprocess.CompletedProcess:
        """check: run with --check."""
        self.runs += 1
        extra = self.tmp / f"vars-{self.runs}.yml"
        extra.write_text(yaml.safe_dump({f"image_puller_{key}": value for key, value in variables.items()}))
        return subprocess.run(
            [str(ANSIBLE_PLAYBOOK), f"kip.image_puller.{name}", *(["--check"] if check else []), "-e", f"@{extra}",
             "-e", f"ansible_python_interpreter={sys.executable}"],
            env=self.env, capture_output=True, text=True, check=False, timeout=900)


@pytest.fixture(name="playbook")
def fixture_playbook(cluster_env, tmp_path) -> Playbook:
    return Playbook(cluster_env, tmp_path)


@pytest.fixture(name="namespace")
def fixture_namespace(kubectl):
    """A namespace name for the role to create (PodSecurity restricted); deleted afterwards."""
    name = f"e2e-real-{uuid.uuid4().hex[:8]}"
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def on_real_node(node: RealNode, namespace: str, images: list[dict], **more) -> dict:
    """Role variables for a puller that runs only on the real node, with the local stand-in puller image."""
    return {"namespace": namespace, "daemonset_name": "cache", "images": images,
            "puller_image": f"{node.registry}/kip-test/puller:1", "node_selector": ON_REAL_NODE,
            "tolerations": TOLERATE_REAL_NODE, "wait_timeout": 150, **more}


def puller_pod(kubectl, namespace: str, name: str = "cache") -> dict:
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={name}",
                        "--field-selector", f"spec.nodeName={NODE}")["items"]
    live = [pod for pod in pods if not pod["metadata"].get("deletionTimestamp")]
    assert len(live) == 1, f"expected one puller pod on {NODE}, found {[p['metadata']['name'] for p in live]}"
    return live[0]


def statuses(pod: dict) -> dict[str, dict]:
    return {status["name"]: status for status in pod["status"].get("containerStatuses") or []}


def ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, f"the playbook failed (rc {proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"


def test_the_real_node_is_a_kubelet_held_to_node_rules_and_left_alone_by_kwok(node, kubectl):
    real = kubectl.json("get", "node", NODE)
    info = real["status"]["nodeInfo"]
    assert info["kubeletVersion"] == kubectl.json("version")["serverVersion"]["gitVersion"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert "kwok.x-k8s.io/node" not in (real["metadata"].get("annotations") or {}), "kwok must not manage the real node"
    assert {"key": "kip.test/real-node", "value": "true", "effect": "NoSchedule"} in real["spec"]["taints"]
    # The kubelet's own identity: the Node authorizer and NodeRestriction let it change its own Node, not another.
    as_node = ["--kubeconfig", str(Path(node.facts["REAL_NODE_DIR"]) / "kubeconfig")]
    assert kubectl.run(*as_node, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == f"system:node:{NODE}"
    other = kubectl.run(*as_node, "label", "node", "kwok-node-0", "kip.test/touched=yes", check=False)
    assert other.returncode != 0 and "forbidden" in other.stderr.lower(), other.stderr
    assert kubectl.run(*as_node, "get", "secrets", "-A", check=False).returncode != 0


def test_every_image_is_in_the_node_store_with_the_registry_digest(node, kubectl, playbook, namespace):
    images = [{"name": "no-shell", "image": f"{node.registry}/kip-test/no-shell:1"},
              {"name": "root-user", "image": f"{node.registry}/kip-test/root-user:1"}]
    ok(playbook("deploy", **on_real_node(node, namespace, images)))

    labels = kubectl.json("get", "namespace", namespace)["metadata"]["labels"]
    assert labels.get("pod-security.kubernetes.io/enforce") == "restricted"
    pod = puller_pod(kubectl, namespace)
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])
    for item in images:
        name, tag = item["image"].split("/", 1)[1].rsplit(":", 1)
        served = node.registry_digest(name, tag)
        assert served in node.stored_digests(item["image"]), f"{item['image']} is not in {NODE}'s image store"
        assert statuses(pod)[item["name"]]["imageID"].endswith("@" + served)

    # Neither image has a shell or a sleep of its own fit to run; root-user even asks for UID 0.
    # Both run the static sleep copied from the puller image, as the non-root UID.
    processes = {p["name"]: p for p in node.processes(pod["metadata"]["name"])}
    assert set(processes) == {"no-shell", "root-user"}
    for process in processes.values():
        assert process["uids"] == {PULLER_UID}, process
        assert process["cmdline"] == ["/kip/sleep", "3600s"], process

    ok(playbook("remove", namespace=namespace, daemonset_name="cache"))
    assert kubectl.run("get", "namespace", namespace, check=False).returncode != 0 or \
        kubectl.json("get", "namespace", namespace)["status"]["phase"] == "Terminating"


def watch_image_id(kubectl, namespace: str, container: str, want: str, timeout: float) -> list[tuple]:
    """Poll the pod until the container's imageID ends with want; returns the distinct states seen."""
    seen: list[tuple] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/instance=cache")["items"]
        for pod in pods:
            status = statuses(pod).get(container) or {}
            state = (pod["metadata"]["name"], status.get("ready"), status.get("restartCount"),
                     next(iter(status.get("state") or {}), None),
                     ((status.get("state") or {}).get("waiting") or {}).get("reason"),
                     (status.get("imageID") or "").rsplit("@", 1)[-1][:19])
            if not seen or seen[-1] != state:
                seen.append(state)
            if (status.get("imageID") or "").endswith("@" + want) and status.get("ready"):
                return seen
        time.sleep(1)
    raise AssertionError(f"the container {container} never ran {want} within {timeout}s; states seen: {seen}")


def test_a_moved_tag_reaches_the_node_after_the_caching_interval(node, kubectl, playbook, namespace):
    ref = f"{node.registry}/kip-test/moving:current"
    first = node.move_tag("kip-test/moving", "a", "current")
    # 0.01 hours: each cached container sleeps 36 s, exits, and is started again with a new pull.
    ok(playbook("deploy", **on_real_node(node, namespace, [{"name": "moving", "image": ref}], caching_interval_hours=0.01)))
    assert statuses(puller_pod(kubectl, namespace))["moving"]["imageID"].endswith("@" + first)

    moved = node.move_tag("kip-test/moving", "b", "current")
    assert moved != first
    seen = watch_image_id(kubectl, namespace, "moving", moved, timeout=180)
    print(f"states of the container while the tag moved (pod, ready, restarts, state, reason, image): {seen}")
    assert moved in node.stored_digests(ref)
    # The same pod, restarted in place: the DaemonSet did not replace it.
    assert len({state[0] for state in seen}) == 1
    assert seen[-1][2] >= 1


def test_a_refresh_makes_the_node_pull_a_moved_tag_at_once(node, kubectl, playbook, namespace):
    ref = f"{node.registry}/kip-test/moving:current"
    first = node.move_tag("kip-test/moving", "a", "current")
    variables = on_real_node(node, namespace, [{"name": "moving", "image": ref}])
    ok(playbook("deploy", **variables))
    uid = kubectl.json("get", "daemonset", "cache", "-n", namespace)["metadata"]["uid"]
    assert statuses(puller_pod(kubectl, namespace))["moving"]["imageID"].endswith("@" + first)

    moved = node.move_tag("kip-test/moving", "b", "current")
    run = playbook("deploy", **variables, refresh=True)
    ok(run)
    # When the role returns, the node runs the moved tag: no waiting for the (hour-long) interval.
    assert statuses(puller_pod(kubectl, namespace))["moving"]["imageID"].endswith("@" + moved)
    assert moved in node.stored_digests(ref)
    assert kubectl.json("get", "daemonset", "cache", "-n", namespace)["metadata"]["uid"] == uid, "the DaemonSet was re-created"
    assert "changed=0" not in run.stdout

    # A later run without refresh neither restarts the pods nor reports a change.
    pod = puller_pod(kubectl, namespace)["metadata"]["name"]
    again = playbook("deploy", **variables)
    ok(again)
    assert "changed=0" in again.stdout, again.stdout[-3000:]
    assert puller_pod(kubectl, namespace)["metadata"]["name"] == pod


def test_an_image_the_registry_lacks_fails_early_naming_image_node_and_kubelet_reason(node, playbook, namespace):
    missing = f"{node.registry}/kip-test/missing:1"
    images = [{"name": "no-shell", "image": f"{node.registry}/kip-test/no-shell:1"}, {"name": "missing", "image": missing}]
    started = time.monotonic()
    run = playbook("deploy", **on_real_node(node, namespace, images, wait_timeout=150))
    elapsed = time.monotonic() - started
    assert run.returncode != 0
    out = run.stdout
    assert f'image "{missing}" (container "missing") on node "{NODE}"' in out, out[-4000:]
    assert "ErrImagePull" in out or "ImagePullBackOff" in out
    assert "not found" in out, "the kubelet's own message (the registry said the manifest is unknown) is shown"
    # The module gives up after 60 s of nothing but pull errors, well before wait_timeout.
    assert elapsed < 140, f"the run took {elapsed:.0f}s, as long as the whole wait_timeout"


def create_pull_secret(kubectl, node: RealNode, namespace: str) -> None:
    kubectl.run("create", "namespace", namespace)
    secret = kubectl.run("create", "secret", "docker-registry", "local-private", "-n", namespace,
                         f"--docker-server={node.private_registry}", "--docker-username=kip-test",
                         f"--docker-password={node.private_password()}", "--dry-run=client", "-o", "json").stdout
    kubectl.apply(secret)


def test_a_private_image_is_cached_with_its_pull_secret_and_refused_without(node, kubectl, playbook, namespace):
    private = f"{node.private_registry}/kip-test/private:1"
    create_pull_secret(kubectl, node, namespace)
    images = [{"name": "private", "image": private}]

    without = playbook("deploy", **on_real_node(node, namespace, images, daemonset_name="no-secret", wait_timeout=120))
    assert without.returncode != 0
    assert f'image "{private}" (container "private") on node "{NODE}"' in without.stdout, without.stdout[-4000:]
    assert "401 Unauthorized" in without.stdout or "unauthorized" in without.stdout.lower()
    assert node.private_password() not in without.stdout + without.stderr
    ok(playbook("remove", namespace=namespace, daemonset_name="no-secret", create_namespace=False))

    ok(playbook("deploy", **on_real_node(node, namespace, images, image_pull_secrets=["local-private"])))
    assert statuses(puller_pod(kubectl, namespace))["private"]["ready"]
    assert node.stored_digests(private), f"{private} is not in {NODE}'s image store"


def test_a_workload_without_the_secret_is_refused_the_image_the_puller_cached_with_it(node, kubectl, playbook, namespace):
    """KEP-2535 (kubelet 1.35+): an image pulled with a secret is not handed to a pod without one."""
    private = f"{node.private_registry}/kip-test/private:1"
    create_pull_secret(kubectl, node, namespace)
    ok(playbook("deploy", **on_real_node(node, namespace, [{"name": "private", "image": private}],
                                         image_pull_secrets=["local-private"])))
    assert node.stored_digests(private), "the puller cached the image"

    container = {"name": "app", "image": private, "imagePullPolicy": "IfNotPresent", "command": ["/data/content.txt"],
                 "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                     "runAsNonRoot": True, "runAsUser": PULLER_UID,
                                     "seccompProfile": {"type": "RuntimeDefault"}}}
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "workload", "namespace": namespace},
                   "spec": {"nodeName": NODE, "tolerations": TOLERATE_REAL_NODE, "restartPolicy": "Never",
                            "automountServiceAccountToken": False, "containers": [container]}})

    def waiting_reason():
        pod = kubectl.json("get", "pod", "workload", "-n", namespace)
        status = statuses(pod).get("app") or {}
        state = status.get("state") or {}
        reason = (state.get("waiting") or {}).get("reason") or (state.get("terminated") or {}).get("reason")
        return (reason, (state.get("waiting") or {}).get("message") or "") if reason not in (None, "ContainerCreating") else None

    reason, message = wait_for(waiting_reason, timeout=90, what="the workload pod's container to leave ContainerCreating")
    print(f"a pod without the pull secret, same node, cached image, IfNotPresent: {reason}: {message}")
    assert reason in ("ErrImagePull", "ImagePullBackOff"), (reason, message)
    assert "401" in message or "unauthorized" in message.lower(), message


def kubelet_max_image_age(node: RealNode) -> str:
    return node.facts.get("IMAGE_MAX_AGE") or "0s"


@pytest.mark.gc
def test_image_gc_keeps_what_the_puller_caches_and_collects_the_rest(node, kubectl, playbook, namespace):
    """The kubelet collects images every 5 minutes (a constant), so this takes 5-13 minutes.

    `make e2e` runs it in a second pytest beside the other tests when the kubelet has a maximum
    image age (`make test` starts the cluster with REAL_NODE_IMAGE_MAX_AGE=30s); `make e2e-gc`
    runs it alone. Its images (gc-kept, unused) are its own, so the tests beside it cannot keep
    them in use.

    A second puller, in another namespace, runs in image_puller_mode init: its image's only
    container is an init container that exited at once, long before the maximum age. The kubelet
    still counts it in use (it counts the images of every container the runtime keeps, exited ones
    too), so GC keeps it as long as the pod exists, like the running containers' images.
    """
    if kubelet_max_image_age(node) in ("0s", "0"):
        pytest.fail("the real node's kubelet has no imageMaximumGCAge; run `make e2e-gc` (REAL_NODE_IMAGE_MAX_AGE=30s)")
    gc_wait = 5 * 60 + 90  # one GC period, plus the maximum age and slack
    unused = f"{node.registry}/kip-test/unused:1"
    node.crictl("pull", unused)
    images = [{"name": "kept-a", "image": f"{node.registry}/kip-test/gc-kept:a"},
              {"name": "kept-b", "image": f"{node.registry}/kip-test/gc-kept:b"}]
    init_namespace, init_images = f"{namespace}-init", [{"name": "kept-init", "image": f"{node.registry}/kip-test/gc-kept:init"}]
    try:
        ok(playbook("deploy", **on_real_node(node, namespace, images)))
        ok(playbook("deploy", **on_real_node(node, init_namespace, init_images, mode="init")))
        pod = puller_pod(kubectl, init_namespace)
        exited = pod["status"]["initContainerStatuses"][-1]["state"]["terminated"]
        assert exited["exitCode"] == 0, pod["status"]["initContainerStatuses"]

        wait_for(lambda: not node.stored_digests(unused), timeout=gc_wait, interval=5,
                 what=f"the kubelet's image GC to remove {unused}, which no container uses")
        for item in images:
            assert node.stored_digests(item["image"]), f"{item['image']} was collected while the puller runs it"
        assert node.stored_digests(init_images[0]["image"]), \
            f"{init_images[0]['image']} was collected: its init container exited at {exited['finishedAt']}"

        ok(playbook("remove", namespace=namespace, daemonset_name="cache"))
        ok(playbook("remove", namespace=init_namespace, daemonset_name="cache"))
        wait_for(lambda: not any(node.stored_digests(item["image"]) for item in images + init_images), timeout=gc_wait, interval=5,
                 what="the kubelet's image GC to remove the images the pullers no longer run")
    finally:
        kubectl.run("delete", "namespace", init_namespace, "--wait=false", check=False)


def test_info_reports_the_digest_the_kubelet_resolved_and_the_image_it_cannot_pull(node, kubectl, playbook, namespace, tmp_path):
    """image_puller_info and the status playbook on a node that really pulls: real digests, the kubelet's own reasons."""
    cached, missing = f"{node.registry}/kip-test/no-shell:1", f"{node.registry}/kip-test/missing:1"
    images = [{"name": "no-shell", "image": cached}, {"name": "missing", "image": missing}]
    ok(playbook("deploy", **on_real_node(node, namespace, images, wait=False)))

    task = {"kip.image_puller.image_puller_info": {"name": "cache", "namespace": namespace, "node_images": True}, "register": "info"}
    show = {"ansible.builtin.copy": {"content": "{{ info | to_json }}", "dest": str(tmp_path / "info.json"), "mode": "0600"},
            "check_mode": False}
    (tmp_path / "info.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task, show]}]))

    def read() -> dict:
        ok(subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", "-c", "local", "--check", "-e", f"ansible_python_interpreter={sys.executable}",
                           str(tmp_path / "info.yml")], env=playbook.env, capture_output=True, text=True, check=False, timeout=300))
        result = json.loads((tmp_path / "info.json").read_text(encoding="utf-8"))
        here = [entry for entry in result["nodes"] if entry["node"] == NODE]
        states = [image["state"] for image in here[0]["images"]] if here else []
        # the kubelet writes its image list into the node's status on its next status update (every 10 s), which can
        # come after the container starts: wait for it too, unless the list is cut at 50 images
        listed = bool(here) and (here[0]["images"][0]["listed"] or here[0]["node_images_truncated"])
        return result if states == ["running", "failed"] and listed else None

    result = wait_for(read, timeout=150, what=f"{cached} running and listed by {NODE}, {missing} failing", interval=3)
    entry = next(entry for entry in result["nodes"] if entry["node"] == NODE)
    assert entry["eligible"] and entry["updated"] and not entry["ready"]
    good, bad = entry["images"]
    name, tag = cached.split("/", 1)[1].rsplit(":", 1)
    assert good["cached"] and good["image_id"].endswith("@" + node.registry_digest(name, tag)), good
    assert good["listed"] or entry["node_images_truncated"], "the node's own image list names the cached image"
    assert (bad["cached"], bad["image_id"], bad["listed"]) == (False, None, False)
    assert bad["reason"] in ("ErrImagePull", "ImagePullBackOff") and "not found" in bad["message"], bad
    assert [n["node"] for n in result["nodes"] if n["eligible"]] == [NODE], "the kwok nodes lack the toleration"
    assert [(item["node"], item["image"]) for item in result["summary"]["lacking"]] == [(NODE, missing)]
    assert result["summary"]["cached_everywhere"] == [cached]

    status = playbook("status", namespace=namespace, daemonset_name="cache")
    ok(status)
    assert f"{NODE}: pod {entry['pod']}, not ready; 1/2 images cached" in status.stdout, status.stdout[-3000:]
    # the kubelet moves between ErrImagePull and ImagePullBackOff: either may show by now
    assert re.search(rf"missing \({re.escape(missing)}\): failed: (ErrImagePull|ImagePullBackOff): .*not found", status.stdout), status.stdout[-3000:]
    ok(playbook("remove", namespace=namespace, daemonset_name="cache"))
