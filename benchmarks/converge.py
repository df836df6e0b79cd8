# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy and no-op time of the role against kubectl's apply + rollout status, on one cluster, in one run.

For each size (nodes x images) the local cluster is started with that many
nodes (every node gets a pod: the DaemonSet tolerates every taint), then, N
times, alternating (role first in the first repetition, kubectl first in the next, and so on)
so that both see the same load:

  role      ansible-playbook kip.image_puller.deploy (a new image list, so a real rollout)
  kubectl   kubectl apply --server-side on the manifests the role renders for the
            next image list, then kubectl rollout status
  beside    (--beside-ansible) the same as kubectl, while an idle `ansible`
            (one `sleep` task) runs beside it: what Ansible's controller alone
            costs a cluster that shares its CPU

and after the last repetition each tool's no-op (the same list again). Printed:
medians, the lag from the last pod turning Ready (a Table watch of the pods in
this process) to the tool's return, the no-op times, and the requests and
bytes each no-op read from the API server (through a small counting proxy in
front of it: HTTP on 127.0.0.1, TLS with the kubeconfig's client certificate
to the API server). The load average is printed beside the figures. Each
timed run starts once the cluster's CPU use is back near its idle level
(--no-settle: at once, as before 4 December 2026).

    make bench                                            # 4x3 and 1001x50
    .venv/bin/python benchmarks/converge.py --sizes 4x3 5001x50 --reps 2
    .venv/bin/python benchmarks/converge.py --sizes 4x3 --no-start   # use the running cluster as it is
    .venv/bin/python benchmarks/converge.py --sizes 4x3 --profile    # also profile_tasks of one deploy
    .venv/bin/python benchmarks/converge.py --sizes 1001x50 --beside-ansible

Targets (issue 9), printed, never asserted: at 1,001 x 50 the role within 3 s of
kubectl (median), at most 1 s from the last pod Ready to return, a no-op at most
1.5 x the 4-node no-op; at 4 x 3 the role within 4 s of kubectl.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import http.server
import json
import os
import resource
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SH = ROOT / "tests" / "cluster" / "cluster.sh"
BIN = Path(sys.executable).parent
NAMESPACE = "bench-converge"
NAME = "bench-puller"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
# Where the role's time goes: a callback that notes (CLOCK_MONOTONIC, shared by every process here) when the rollout
# module's task started (before it: Ansible's start and the tasks before the module), when its result reached
# ansible-playbook and when the play ended; the process's exit is the rest.
STAMPS_CALLBACK = """
import os, time
from ansible.plugins.callback import CallbackBase

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "bench_stamps"
    CALLBACK_NEEDS_ENABLED = False

    def _stamp(self, what):
        with open(os.environ["BENCH_STAMPS"], "a", encoding="utf-8") as out:
            out.write(f"{what} {time.monotonic()}\\n")

    def v2_playbook_on_task_start(self, task, is_conditional):
        if task.action.endswith("image_puller_daemonset"):
            self._stamp("module_start")

    def v2_runner_on_ok(self, result, **_kwargs):
        if result._task.action.endswith("image_puller_daemonset"):
            self._stamp("module")

    def v2_playbook_on_stats(self, stats):
        self._stamp("stats")
"""


def log(text: str) -> None:
    # UTC, as the cluster's component logs (~/.cache/kip-image-puller/cluster/kwok/clusters/kip/logs) write it
    print(f"[converge {datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


def images(count: int, tag: int) -> list[dict]:
    return [{"name": f"img{i}", "image": f"registry.example/bench/img{i}:{tag}"} for i in range(count)]


def role_vars(count: int, tag: int) -> dict:
    return {
        "image_puller_namespace": NAMESPACE,
        "image_puller_daemonset_name": NAME,
        "image_puller_platform": "kubernetes",
        "image_puller_images": images(count, tag),
        "image_puller_tolerations": [{"operator": "Exists"}],
        "image_puller_wait_timeout": 1800,
    }


class Kube:
    """The kubeconfig's cluster and client certificate, for the proxy and the pod watch."""

    def __init__(self, kubeconfig: str) -> None:
        self.kubeconfig = kubeconfig
        config = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8"))
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.server = urllib.parse.urlsplit(cluster["server"])
        self._tmp = tempfile.TemporaryDirectory(prefix="converge-")
        self.context = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        else:
            self.context.load_verify_locations(cafile=self._file(cluster, "certificate-authority"))
        self.context.load_cert_chain(self._file(user, "client-certificate"), self._file(user, "client-key"))

    def _file(self, section: dict, key: str) -> str:
        if section.get(f"{key}-data"):
            path = Path(self._tmp.name) / key
            path.write_bytes(base64.b64decode(section[f"{key}-data"]))
            return str(path)
        return section[key]

    def connect(self, timeout: float | None = 30) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(self.server.hostname, self.server.port or 443, context=self.context, timeout=timeout)


class Watch(threading.Thread):
    """A watch of PATH (with ACCEPT) that reconnects after any end or break; handle() takes each event."""

    PATH = ""
    ACCEPT = "application/json"

    def __init__(self, kube: Kube) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                conn = self.kube.connect(timeout=None)
                conn.request("GET", self.PATH, headers={"Accept": self.ACCEPT})
                for line in conn.getresponse():
                    self.handle(json.loads(line))
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(1)

    def handle(self, event: dict) -> None:
        raise NotImplementedError


class ReadyWatch(Watch):
    """When did the last pod of the namespace turn all-containers-ready? (monotonic time, from a Table watch)."""

    PATH = f"/api/v1/namespaces/{NAMESPACE}/pods?watch=1&includeObject=None"
    ACCEPT = TABLE

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube)
        self.ready: dict[str, bool] = {}
        self.last_ready = 0.0
        self.columns: list[str] = []

    def handle(self, event: dict) -> None:
        table = event.get("object") or {}
        self.columns = [c["name"].lower() for c in table.get("columnDefinitions") or []] or self.columns
        for row in table.get("rows") or []:
            cells = dict(zip(self.columns, row["cells"]))
            ready, _slash, total = str(cells.get("ready", "0/0")).partition("/")
            now_ready = event["type"] != "DELETED" and ready == total and total not in ("", "0") and cells.get("status") != "Terminating"
            with self.lock:
                if now_ready and not self.ready.get(cells["name"]):
                    self.last_ready = time.monotonic()
                self.ready[cells["name"]] = now_ready


class GenerationWatch(Watch):
    """When did each new generation of the DaemonSet (a new pod template applied) appear? (monotonic time, from a watch)."""

    PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets?watch=1&fieldSelector=metadata.name%3D{NAME}"

    def __init__(self, kube: Kube) -> None:
        super().__init__(kube)
        self.seen: dict[int, float] = {}

    def handle(self, event: dict) -> None:
        generation = ((event.get("object") or {}).get("metadata") or {}).get("generation")
        if isinstance(generation, int):
            with self.lock:
                self.seen.setdefault(generation, time.monotonic())

    def applied_after(self, start: float) -> float:
        """The first new generation seen after start (nan if none)."""
        with self.lock:
            return min((at for at in self.seen.values() if at >= start), default=float("nan"))


class CountingProxy:
    """HTTP on 127.0.0.1 -> HTTPS to the API server; counts requests and response bytes."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.requests = 0
        self.bytes = 0
        # each request: (when it ended, method, path with query, response bytes)
        self.seen: list[tuple[float, str, str, int]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # pylint: disable=arguments-differ
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "authorization")}
                upstream = proxy.kube.connect(timeout=None)
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = 0
                while True:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    sent += len(chunk)
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                with proxy.lock:
                    proxy.requests += 1
                    proxy.bytes += sent
                    proxy.seen.append((time.monotonic(), self.command, self.path, sent))
                upstream.close()

            def _forward_quietly(self):
                try:
                    self._forward()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client closed a watch early: nothing to count or to report
                except http.client.IncompleteRead:
                    pass  # the API server went away mid-answer (the cluster stopped for the next size)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward_quietly

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, directory: Path) -> str:
        path = directory / "proxy-kubeconfig.yaml"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": f"http://127.0.0.1:{self.server.server_port}"}}],
            "users": [{"name": "proxy", "user": {}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        }))
        return str(path)

    def reset(self) -> None:
        with self.lock:
            self.requests = self.bytes = 0
            self.seen = []


class Bench:
    def __init__(self, kube: Kube, work: Path, env: dict) -> None:
        self.kube, self.work, self.env = kube, work, env
        self.watch = ReadyWatch(kube)
        self.watch.start()
        self.generations = GenerationWatch(kube)
        self.generations.start()
        self.last_start = 0.0
        callbacks = work / "callback_plugins"
        callbacks.mkdir(exist_ok=True)
        (callbacks / "bench_stamps.py").write_text(STAMPS_CALLBACK)
        self.stamps_file = work / "stamps"
        self.stamps: dict[str, float] = {}

    def _env(self, kubeconfig: str | None = None, **extra: str) -> dict:
        env = {k: v for k, v in self.env.items() if not k.startswith("K8S_AUTH_")}
        env.update(KUBECONFIG=kubeconfig or self.kube.kubeconfig, K8S_AUTH_KUBECONFIG=kubeconfig or self.kube.kubeconfig,
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
                   ANSIBLE_CALLBACK_PLUGINS=str(self.work / "callback_plugins"), BENCH_STAMPS=str(self.stamps_file), **extra)
        return env

    def _vars_file(self, count: int, tag: int) -> Path:
        path = self.work / f"vars-{count}-{tag}.yml"
        path.write_text(yaml.safe_dump(role_vars(count, tag)))
        return path

    def role(self, count: int, tag: int, *, kubeconfig: str | None = None, **extra: str) -> tuple[float, str]:
        self.stamps_file.unlink(missing_ok=True)
        start = self.last_start = time.monotonic()
        proc = subprocess.run([str(BIN / "ansible-playbook"), "kip.image_puller.deploy", "-e", f"@{self._vars_file(count, tag)}"],
                              env=self._env(kubeconfig, **extra), capture_output=True, text=True, check=False)
        took = time.monotonic() - start
        self.stamps = {"return": start + took}
        if self.stamps_file.exists():
            self.stamps.update((what, float(at)) for what, at in (line.split() for line in self.stamps_file.read_text().splitlines()))
        if proc.returncode:
            raise SystemExit(f"role deploy failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        return took, proc.stdout

    def render(self, count: int, tag: int) -> Path:
        """The manifests the role renders for this list, as one multi-document file for kubectl."""
        playbook = self.work / "render.yml"
        out = self.work / f"manifests-{count}-{tag}.json"
        playbook.write_text(yaml.safe_dump([{
            "hosts": "localhost", "connection": "local", "gather_facts": False,
            "tasks": [
                {"name": "validate", "ansible.builtin.include_role": {"name": "kip.image_puller.image_puller", "tasks_from": "validate"}},
                {"name": "render", "ansible.builtin.include_role": {
                    "name": "kip.image_puller.image_puller", "tasks_from": "render", "public": True}},
                {"name": "write", "ansible.builtin.copy": {
                    "dest": str(out),
                    "content": "{{ {'apiVersion': 'v1', 'kind': 'List', 'items': [_image_puller_namespace_manifest]"
                               " + _image_puller_objects + _image_puller_daemonsets} | to_json }}"}},
            ],
        }]))
        proc = subprocess.run([str(BIN / "ansible-playbook"), str(playbook), "-e", f"@{self._vars_file(count, tag)}"],
                              env=self._env(), capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(f"rendering failed:\n{proc.stdout[-3000:]}")
        return out

    def kubectl(self, manifests: Path, *, kubeconfig: str | None = None) -> float:
        env = self._env(kubeconfig)
        start = self.last_start = time.monotonic()
        applied = subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(manifests)], env=env,
                                 check=False, capture_output=True, text=True)
        if applied.returncode:
            raise SystemExit(f"kubectl apply failed: {applied.stderr}")
        subprocess.run(["kubectl", "rollout", "status", f"daemonset/{NAME}", "-n", NAMESPACE, "--timeout=30m"], env=env,
                       check=True, capture_output=True)
        return time.monotonic() - start

    def idle_ansible(self) -> "IdleAnsible":
        return IdleAnsible(self._env())

    def lag(self, returned: float) -> float:
        with self.watch.lock:
            return returned - self.watch.last_ready

    def phases(self, returned: float) -> tuple[float, float]:
        """The last run in two: its start -> the new DaemonSet generation applied -> the last pod Ready."""
        applied = self.generations.applied_after(self.last_start)
        with self.watch.lock:
            ready = self.watch.last_ready
        return applied - self.last_start, ready - applied

    def pre_apply_parts(self) -> tuple[float, float]:
        """The last role run's time before the apply in two: its start -> the module's task starting (Ansible's start,
        the settings check, the render) -> the new DaemonSet generation seen (the module's start, pre-flight, writes)."""
        applied = self.generations.applied_after(self.last_start)
        module_start = self.stamps.get("module_start", float("nan"))
        return module_start - self.last_start, applied - module_start

    def lag_parts(self) -> tuple[float, float, float]:
        """The last role run's lag in three: last Ready -> the module's result in ansible-playbook -> the play's end
        (the tasks after the module) -> the process's exit."""
        with self.watch.lock:
            ready = self.watch.last_ready
        module, stats, returned = (self.stamps.get(what, float("nan")) for what in ("module", "stats", "return"))
        return module - ready, stats - module, returned - stats


class IdleAnsible:
    """Ansible's controller waiting for a task's result, without the collection: `ansible localhost -m command -a
    'sleep ...'` in the background, from its sleep's start to the end of the `with` block (then killed).

    While a task runs, ansible-playbook's main process checks for its result every internal_poll_interval (1 ms by
    default). kubectl's deploy with this beside it shows what that costs the co-located cluster, apart from anything
    the collection does.
    """

    SLEEP = "86399"  # a duration nothing else here sleeps, to find the task's process by

    def __init__(self, env: dict) -> None:
        self.env = env
        self.proc: subprocess.Popen | None = None

    def _sleeping(self) -> bool:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes() == f"sleep\0{self.SLEEP}\0".encode():
                    return True
            except OSError:
                continue
        return False

    def __enter__(self) -> "IdleAnsible":
        self.proc = subprocess.Popen([str(BIN / "ansible"), "localhost", "-c", "local", "-m", "ansible.builtin.command",
                                      "-a", f"sleep {self.SLEEP}"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while not self._sleeping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the idle ansible did not start its task")
            time.sleep(0.1)
        return self

    def __exit__(self, *_exc) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait()


TICKS = os.sysconf("SC_CLK_TCK")
# The local cluster's processes, by the start of their /proc/<pid>/comm (15 characters at most).
CLUSTER_PROCESSES = ("kube-apiserver", "etcd", "kube-controller", "kube-scheduler", "kwok-controller")


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far: of this process's finished children (the tools), and of each cluster process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = {"tool": usage.ru_utime + usage.ru_stime}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip()
            if comm.startswith(CLUSTER_PROCESSES):
                fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
                seconds[comm] = seconds.get(comm, 0.0) + (int(fields[11]) + int(fields[12])) / TICKS
        except (OSError, IndexError, ValueError):
            continue
    return seconds


# Before each timed run the cluster is left to settle: on 2 cores shared with the cluster, a run that starts while the
# last rollout's aftermath (kwok, the controllers) still takes the CPU measures the machine rather than the tool, and
# the role, which needs about 2.5 CPU seconds before its apply (kubectl 0.2), more so than kubectl.
SETTLE_WINDOW = 2.0
# above the idle cluster's own use, in cores
SETTLE_MARGIN = 0.25
SETTLE_LIMIT = 60.0


def cluster_cores(window: float) -> float:
    """Cores the cluster's processes used over the next `window` seconds."""
    before = cpu_seconds()
    time.sleep(window)
    used = cpu_used(before, cpu_seconds())
    return sum(value for key, value in used.items() if key != "tool") / window


def settle(idle: float | None) -> float:
    """Waits until the cluster uses at most idle + SETTLE_MARGIN cores over SETTLE_WINDOW (at most SETTLE_LIMIT
    seconds); returns how long it waited. idle None: no wait."""
    if idle is None:
        return 0.0
    start = time.monotonic()
    while time.monotonic() - start < SETTLE_LIMIT and cluster_cores(SETTLE_WINDOW) > idle + SETTLE_MARGIN:
        pass
    return time.monotonic() - start


def cpu_text(used: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.1f}" for key, value in sorted(used.items(), key=lambda item: -item[1]))


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {key: after[key] - before.get(key, 0.0) for key in after}


class LaggingCluster:
    """How often the cluster's controllers acted on a stale view during a run, from the local cluster's component logs.

    A saturated API server delivers watch events late, and a controller whose
    cache lags its own writes repeats work. kwok then plays its pod-ready stage
    again on a pod it has already made ready, and the patch fails (the pod would
    get a second IP: "failed to apply stage" ... "podIPs"). The DaemonSet
    controller refuses to sync until its cache has seen its own writes ("is not
    as new as written version") and retries with back-off. Counted per run
    (from the logs' sizes at its start), to tell a rollout the cluster slowed
    down from one the tool did.
    """

    # each sign: the log, and the strings its lines contain
    SIGNS = {"kwok ready replays": ("kwok-controller.log", (b'"failed to apply stage"', b"podIPs")),
             "stale syncs": ("kube-controller-manager.log", (b"is not as new as written version",))}

    def __init__(self, kubeconfig: str) -> None:
        self.logs = Path(kubeconfig).parent / "logs"
        self.offsets: dict[str, int] = {}

    def mark(self) -> None:
        self.offsets = {name: self._size(name) for name, _strings in self.SIGNS.values()}

    def _size(self, name: str) -> int:
        try:
            return (self.logs / name).stat().st_size
        except OSError:
            return 0

    def counts(self) -> dict[str, int]:
        """Each sign's lines since mark() (empty without the local cluster's logs)."""
        found: dict[str, int] = {}
        for what, (name, strings) in self.SIGNS.items():
            try:
                with (self.logs / name).open("rb") as handle:
                    handle.seek(self.offsets.get(name, 0))
                    found[what] = sum(all(part in line for part in strings) for line in handle)
            except OSError:
                continue
        return found


def start_cluster(nodes: int) -> None:
    log(f"starting the cluster with {nodes} nodes")
    env = dict(os.environ, CLUSTER_NODES=str(nodes - 1), CLUSTER_ARCH_POOL="0")  # cluster.sh adds one tainted gpu node
    subprocess.run([str(CLUSTER_SH), "up"], env=env, check=True, stdout=subprocess.DEVNULL)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def profile(text: str) -> list[str]:
    """The per-task lines of the profile_tasks callback's summary."""
    lines = text.splitlines()
    try:
        start = max(i for i, line in enumerate(lines) if line.startswith("=====")) + 1
    except ValueError:
        return []
    return [line for line in lines[start:] if line.strip()]


def measure(bench: Bench, proxy: CountingProxy, nodes: int, count: int, reps: int, want_profile: bool,
            settling: bool = True, beside: bool = False) -> dict:
    tag = int(time.time()) % 100000 * 10
    idle = cluster_cores(5.0) if settling else None
    if idle is not None:
        log(f"{nodes}x{count}: the idle cluster uses {idle:.2f} cores; each timed run starts once it is back under "
            f"{idle + SETTLE_MARGIN:.2f} (over {SETTLE_WINDOW:.0f} s, waiting at most {SETTLE_LIMIT:.0f} s)")
    waits: list[float] = []
    manifests = [bench.render(count, tag + 2 * rep + 1) for rep in range(reps)]
    # the third tool's lists: odd tags past the others'
    beside_manifests = [bench.render(count, tag + 2 * (reps + 2 + rep) + 1) for rep in range(reps)] if beside else []
    log(f"{nodes}x{count}: first deploy (not timed)")
    bench.role(count, tag)
    role_times, kubectl_times, role_lags, kubectl_lags, lag_parts, pre_apply = [], [], [], [], [], []
    role_phases, kubectl_phases = [], []
    cpu: dict[str, list[dict[str, float]]] = {"role": [], "kubectl": []}
    beside_times: list[float] = []
    beside_phases: list[tuple[float, float]] = []
    beside_signs: list[dict[str, int]] = []
    lagging = LaggingCluster(bench.kube.kubeconfig)
    stale: dict[str, list[dict[str, int]]] = {"role": [], "kubectl": []}

    def run_role(rep: int) -> None:
        waits.append(settle(idle))
        log(f"{nodes}x{count} rep {rep + 1}: the role deploys (after {waits[-1]:.0f} s of settling)")
        lagging.mark()
        before = cpu_seconds()
        took, _out = bench.role(count, tag + 2 * rep + 2)
        cpu["role"].append(cpu_used(before, cpu_seconds()))
        stale["role"].append(lagging.counts())
        role_times.append(took)
        role_lags.append(bench.lag(bench.stamps["return"]))
        lag_parts.append(bench.lag_parts())
        pre_apply.append(bench.pre_apply_parts())
        role_phases.append(bench.phases(bench.stamps["return"]))

    def run_kubectl(rep: int) -> None:
        waits.append(settle(idle))
        log(f"{nodes}x{count} rep {rep + 1}: kubectl deploys (after {waits[-1]:.0f} s of settling)")
        lagging.mark()
        before = cpu_seconds()
        kubectl_times.append(bench.kubectl(manifests[rep]))
        returned = time.monotonic()
        cpu["kubectl"].append(cpu_used(before, cpu_seconds()))
        stale["kubectl"].append(lagging.counts())
        kubectl_lags.append(bench.lag(returned))
        kubectl_phases.append(bench.phases(returned))

    def run_beside(rep: int) -> None:
        waits.append(settle(idle))
        with bench.idle_ansible():
            log(f"{nodes}x{count} rep {rep + 1}: kubectl deploys beside an idle ansible (after {waits[-1]:.0f} s of settling)")
            lagging.mark()
            beside_times.append(bench.kubectl(beside_manifests[rep]))
            beside_phases.append(bench.phases(time.monotonic()))
            beside_signs.append(lagging.counts())
        log(f"{nodes}x{count} rep {rep + 1}: kubectl beside an idle ansible {beside_times[-1]:.1f} s, "
            f"start -> applied -> last Ready {beside_phases[-1][0]:.1f} + {beside_phases[-1][1]:.1f} s, "
            f"signs of a lagging cluster {beside_signs[-1]}")

    arms = [("role", run_role), ("kubectl", run_kubectl)] + ([("beside", run_beside)] if beside else [])
    for rep in range(reps):
        # each repetition starts with the next tool in turn: none always follows another's rollout
        order = arms[rep % len(arms):] + arms[:rep % len(arms)]
        for _name, run in order:
            run(rep)
        log(f"{nodes}x{count} rep {rep + 1} ({order[0][0]} first): start -> applied -> last Ready: "
            f"role {role_phases[-1][0]:.1f} ({pre_apply[-1][0]:.1f} + {pre_apply[-1][1]:.1f}) + {role_phases[-1][1]:.1f} s, "
            f"kubectl {kubectl_phases[-1][0]:.1f} + {kubectl_phases[-1][1]:.1f} s")
        log(f"{nodes}x{count} rep {rep + 1}: CPU seconds during each run: role {cpu_text(cpu['role'][-1])}; "
            f"kubectl {cpu_text(cpu['kubectl'][-1])}")
        log(f"{nodes}x{count} rep {rep + 1}: signs of a lagging cluster: role {stale['role'][-1]}, kubectl {stale['kubectl'][-1]}")
        log(f"{nodes}x{count} rep {rep + 1}: role {role_times[-1]:.1f}s (lag {role_lags[-1]:.2f}s = "
            f"{' + '.join(f'{x:.2f}' for x in lag_parts[-1])}), kubectl {kubectl_times[-1]:.1f}s (lag {kubectl_lags[-1]:.2f}s)")
    last_role_tag = tag + 2 * reps + 2
    bench.role(count, last_role_tag)
    noop_role, role_reads, noop_kubectl, kubectl_reads = noops(bench, proxy, count, last_role_tag, idle)
    profiled = []
    if want_profile:
        _took, out = bench.role(count, last_role_tag + 1, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
        profiled = profile(out)
    return {
        "size": f"{nodes}x{count}", "reps": reps, "role": median(role_times), "kubectl": median(kubectl_times),
        "role_lag": median(role_lags), "kubectl_lag": median(kubectl_lags), "noop_role": noop_role, "noop_kubectl": noop_kubectl,
        "role_reads": role_reads, "kubectl_reads": kubectl_reads, "load": os.getloadavg(), "profile": profiled,
        "role_all": role_times, "kubectl_all": kubectl_times, "idle": idle, "settled": waits,
        "lag_parts": [median([parts[i] for parts in lag_parts]) for i in range(3)],
        "pre_apply": [median([parts[i] for parts in pre_apply]) for i in range(2)],
        "cpu": {tool: {key: median([run.get(key, 0.0) for run in runs]) for key in (runs[0] if runs else {})}
                for tool, runs in cpu.items()},
        "beside": {"all": beside_times, "rollouts": [p[1] for p in beside_phases], "signs": beside_signs} if beside else {},
        "phases": {"role": [median([p[i] for p in role_phases]) for i in range(2)],
                   "kubectl": [median([p[i] for p in kubectl_phases]) for i in range(2)]},
        # what each tool adds to the rollout: start -> applied, plus last Ready -> return
        "own": {"role": [p[0] + lag for p, lag in zip(role_phases, role_lags)],
                "kubectl": [p[0] + lag for p, lag in zip(kubectl_phases, kubectl_lags)]},
        "rollouts": {tool: [(p[1], run.get("kwok-controller", 0.0), signs) for p, run, signs in zip(phases, cpu[tool], stale[tool])]
                     for tool, phases in (("role", role_phases), ("kubectl", kubectl_phases))},
    }


NOOP_REPS = 3


def noops(bench: Bench, proxy: CountingProxy, count: int, tag: int, idle: float | None = None) -> tuple:
    """Each tool's no-op of the images at this tag, timed NOOP_REPS times (median) and counted once through the proxy.
    Each timed no-op starts on a settled cluster (idle: see settle()): right after a rollout at 1,001 nodes the
    cluster still takes the CPU for a minute, which a no-op of 2 s would measure.

    Returns (role seconds, role (requests, bytes), kubectl seconds, kubectl (requests, bytes)).
    """
    def settled(run):
        settle(idle)
        return run()

    noop_role = median([settled(lambda: bench.role(count, tag)[0]) for _rep in range(NOOP_REPS)])
    proxy.reset()
    bench.role(count, tag, kubeconfig=proxy.kubeconfig(bench.work))
    role_reads = (proxy.requests, proxy.bytes)
    manifests = bench.render(count, tag)
    noop_kubectl = median([settled(lambda: bench.kubectl(manifests)) for _rep in range(NOOP_REPS)])
    proxy.reset()
    bench.kubectl(manifests, kubeconfig=proxy.kubeconfig(bench.work))
    return noop_role, role_reads, noop_kubectl, (proxy.requests, proxy.bytes)


def current_tag(kube: Kube) -> int:
    """The image tag the DaemonSet runs now (what a no-op must deploy again)."""
    conn = kube.connect()
    conn.request("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{NAME}", headers={"Accept": "application/json"})
    daemonset = json.loads(conn.getresponse().read())
    return int(daemonset["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1])


def measure_noop(bench: Bench, proxy: CountingProxy, nodes: int, count: int) -> dict:
    """Only the no-ops, on the DaemonSet as it stands (no rollout): for a size whose rollouts take too long to repeat."""
    noop_role, role_reads, noop_kubectl, kubectl_reads = noops(bench, proxy, count, current_tag(bench.kube))
    nan = float("nan")
    return {"size": f"{nodes}x{count}", "reps": 0, "role": nan, "kubectl": nan, "role_lag": nan, "kubectl_lag": nan,
            "noop_role": noop_role, "noop_kubectl": noop_kubectl, "role_reads": role_reads, "kubectl_reads": kubectl_reads,
            "load": os.getloadavg(), "profile": [], "role_all": [], "kubectl_all": [], "lag_parts": [], "phases": {},
            "pre_apply": [], "cpu": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["4x3", "1001x50"], help="NODESxIMAGES (5001x50 on demand)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions per tool and size (alternating)")
    parser.add_argument("--no-start", action="store_true", help="use the running cluster as it is (its node count is reported)")
    parser.add_argument("--profile", action="store_true", help="also run one deploy with the profile_tasks callback")
    parser.add_argument("--settle", action=argparse.BooleanOptionalAction, default=True,
                        help="start each timed run once the cluster's CPU use is back near its idle level (default: on)")
    parser.add_argument("--noop-only", action="store_true", help="only the no-ops, on the DaemonSet as it stands (with --no-start)")
    parser.add_argument("--beside-ansible", action="store_true",
                        help="a third tool: kubectl while an idle `ansible` (one sleep task) runs beside it, to tell what "
                             "Ansible's controller costs the co-located cluster from what the collection does")
    parser.add_argument("--ansible-cfg", metavar="PATH", help="run ansible-playbook with this configuration file (ANSIBLE_CONFIG), "
                        "for example one that sets internal_poll_interval; default: Ansible's defaults")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.ansible_cfg:
        env["ANSIBLE_CONFIG"] = str(Path(args.ansible_cfg).resolve())
        log(f"ansible-playbook runs with ANSIBLE_CONFIG={env['ANSIBLE_CONFIG']}:\n{Path(args.ansible_cfg).read_text(encoding='utf-8')}")
    kubeconfig = os.environ.get("K8S_AUTH_KUBECONFIG") or os.environ.get("KUBECONFIG")
    if not kubeconfig:
        sys.exit("no kubeconfig: run through `make bench`, or set KUBECONFIG to the local cluster's")
    rows = []
    with tempfile.TemporaryDirectory(prefix="converge-") as work:
        for size in args.sizes:
            nodes, count = (int(part) for part in size.split("x"))
            if not args.no_start:
                start_cluster(nodes)
            kube = Kube(subprocess.run([str(CLUSTER_SH), "kubeconfig"], capture_output=True, text=True, check=True).stdout.strip()
                        if not args.no_start else kubeconfig)
            bench = Bench(kube, Path(work), env)
            proxy = CountingProxy(kube)
            if args.noop_only:
                rows.append(measure_noop(bench, proxy, nodes, count))
            else:
                rows.append(measure(bench, proxy, nodes, count, args.reps, args.profile, settling=args.settle,
                                    beside=args.beside_ansible))
    print("| nodes x images | reps | role deploy | kubectl deploy | role - kubectl | last Ready -> return (role / kubectl) "
          "| no-op role | no-op kubectl | no-op reads role (req / bytes) | no-op reads kubectl | load avg 1/5/15 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(f"| {row['size']} | {row['reps']} | {row['role']:.1f} s | {row['kubectl']:.1f} s | {row['role'] - row['kubectl']:+.1f} s "
              f"| {row['role_lag']:.2f} s / {row['kubectl_lag']:.2f} s | {row['noop_role']:.1f} s | {row['noop_kubectl']:.1f} s "
              f"| {row['role_reads'][0]} / {row['role_reads'][1]:,} | {row['kubectl_reads'][0]} / {row['kubectl_reads'][1]:,} "
              f"| {' / '.join(f'{x:.2f}' for x in row['load'])} |")
    for row in rows:
        print(f"{row['size']}: role runs {', '.join(f'{x:.1f}' for x in row['role_all'])} s; "
              f"kubectl runs {', '.join(f'{x:.1f}' for x in row['kubectl_all'])} s")
        if row.get("idle") is not None:
            print(f"{row['size']}: settling before each run (the idle cluster: {row['idle']:.2f} cores): "
                  f"{', '.join(f'{x:.0f}' for x in row['settled'])} s")
        if row["phases"]:
            role, kubectl = row["phases"]["role"], row["phases"]["kubectl"]
            print(f"{row['size']}: start -> DaemonSet applied (medians): role {role[0]:.1f} s, kubectl {kubectl[0]:.1f} s; "
                  f"applied -> last pod Ready (the rollout itself): role {role[1]:.1f} s, kubectl {kubectl[1]:.1f} s")
        if row.get("own"):
            role, kubectl = median(row["own"]["role"]), median(row["own"]["kubectl"])
            print(f"{row['size']}: each tool's own time (start -> applied, plus last Ready -> return; medians): role {role:.2f} s, "
                  f"kubectl {kubectl:.2f} s, {role - kubectl:+.2f} s; per run: role "
                  f"{', '.join(f'{x:.2f}' for x in row['own']['role'])}, kubectl {', '.join(f'{x:.2f}' for x in row['own']['kubectl'])}")
            print(f"{row['size']}: the rollouts themselves (applied -> last Ready; in brackets kwok-controller's CPU seconds "
                  f"and the signs of a lagging cluster, {' / '.join(LaggingCluster.SIGNS)}): "
                  + "; ".join(f"{tool} " + ", ".join(f"{took:.1f} s ({kwok:.0f} s, {' / '.join(str(n) for n in signs.values()) or '-'})"
                                                     for took, kwok, signs in runs)
                              for tool, runs in row["rollouts"].items()))
        if row.get("own"):
            # the same repetition ran both tools one after the other: the pair's difference leaves out the drift between
            # repetitions, and the pairs in which kwok replayed on neither side leave out its episodes
            pairs = [role - kubectl for role, kubectl in zip(row["role_all"], row["kubectl_all"])]
            replays = next(iter(LaggingCluster.SIGNS))
            quiet = [pair for pair, (_r, _c, role_signs), (_k, _d, kubectl_signs)
                     in zip(pairs, row["rollouts"]["role"], row["rollouts"]["kubectl"])
                     if not role_signs.get(replays) and not kubectl_signs.get(replays)]
            print(f"{row['size']}: role - kubectl deploy per repetition {', '.join(f'{pair:+.1f}' for pair in pairs)} s, "
                  f"median {median(pairs):+.1f} s; in the {len(quiet)} without {replays} on either side: "
                  f"{', '.join(f'{pair:+.1f}' for pair in quiet) or '-'} s" + (f", median {median(quiet):+.1f} s" if quiet else ""))
        if row.get("beside"):
            runs, rollouts = row["beside"]["all"], row["beside"]["rollouts"]
            pairs = [role - other for role, other in zip(row["role_all"], runs)]
            print(f"{row['size']}: kubectl beside an idle ansible: deploy median {median(runs):.1f} s "
                  f"({', '.join(f'{x:.1f}' for x in runs)}), rollout median {median(rollouts):.1f} s "
                  f"({', '.join(f'{x:.1f}' for x in rollouts)}), signs of a lagging cluster "
                  f"{', '.join(' / '.join(str(n) for n in signs.values()) or '-' for signs in row['beside']['signs'])}; "
                  f"role - it per repetition "
                  f"{', '.join(f'{pair:+.1f}' for pair in pairs)} s, median {median(pairs):+.1f} s")
        if row["pre_apply"]:
            print(f"{row['size']}: the role before the apply (medians): start -> the module's task {row['pre_apply'][0]:.1f} s "
                  f"(Ansible's start, the settings check, the render), -> DaemonSet applied {row['pre_apply'][1]:.1f} s "
                  f"(the module's start, pre-flight and writes)")
        if row["cpu"]:
            print(f"{row['size']}: CPU seconds during a deploy (medians; the machine has {os.cpu_count()} cores): "
                  f"role run: {cpu_text(row['cpu']['role'])}; kubectl run: {cpu_text(row['cpu']['kubectl'])}")
        if row["lag_parts"]:
            ready_module, module_stats, stats_exit = row["lag_parts"]
            print(f"{row['size']}: the role's lag (medians): last Ready -> the module's result in ansible-playbook "
                  f"{ready_module:.2f} s, -> the play's end (the tasks after it) {module_stats:.2f} s, "
                  f"-> ansible-playbook's exit {stats_exit:.2f} s")
        if row["profile"]:
            print(f"profile_tasks of one role deploy at {row['size']}:")
            print("\n".join(f"    {line}" for line in row["profile"]))


if __name__ == "__main__":
    main()
