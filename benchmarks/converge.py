# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Deploy and no-op time of the role against kubectl's apply + rollout status, on one cluster, in one run.

For each size (nodes x images) the local cluster is started with that many
nodes (every node gets a pod: the DaemonSet tolerates every taint), then, N
times, alternating so that both see the same load:

  role      ansible-playbook kip.image_puller.deploy (a new image list, so a real rollout)
  kubectl   kubectl apply --server-side on the manifests the role renders for the
            next image list, then kubectl rollout status

and after the last repetition each tool's no-op (the same list again). Printed:
medians, the lag from the last pod turning Ready (a Table watch of the pods in
this process) to the tool's return, the no-op times, and the requests and
bytes each no-op read from the API server (through a small counting proxy in
front of it: HTTP on 127.0.0.1, TLS with the kubeconfig's client certificate
to the API server). The load average is printed beside the figures.

    make bench                                            # 4x3 and 1001x50
    .venv/bin/python benchmarks/converge.py --sizes 4x3 5001x50 --reps 2
    .venv/bin/python benchmarks/converge.py --sizes 4x3 --no-start   # use the running cluster as it is
    .venv/bin/python benchmarks/converge.py --sizes 4x3 --profile    # also profile_tasks of one deploy

Targets (issue 9), printed, never asserted: at 1,001 x 50 the role within 3 s of
kubectl (median), at most 1 s from the last pod Ready to return, a no-op at most
1.5 x the 4-node no-op; at 4 x 3 the role within 4 s of kubectl.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import http.server
import json
import os
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


def log(text: str) -> None:
    print(f"[converge] {text}", file=sys.stderr, flush=True)


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


class ReadyWatch(threading.Thread):
    """When did the last pod of the namespace turn all-containers-ready? (monotonic time, from a Table watch)."""

    def __init__(self, kube: Kube) -> None:
        super().__init__(daemon=True)
        self.kube = kube
        self.ready: dict[str, bool] = {}
        self.last_ready = 0.0
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                self._watch()
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(1)

    def _watch(self) -> None:
        conn = self.kube.connect(timeout=None)
        conn.request("GET", f"/api/v1/namespaces/{NAMESPACE}/pods?watch=1&includeObject=None", headers={"Accept": TABLE})
        response = conn.getresponse()
        columns: list[str] = []
        for line in response:
            event = json.loads(line)
            table = event.get("object") or {}
            columns = [c["name"].lower() for c in table.get("columnDefinitions") or []] or columns
            for row in table.get("rows") or []:
                cells = dict(zip(columns, row["cells"]))
                ready, _slash, total = str(cells.get("ready", "0/0")).partition("/")
                now_ready = event["type"] != "DELETED" and ready == total and total not in ("", "0") and cells.get("status") != "Terminating"
                with self.lock:
                    if now_ready and not self.ready.get(cells["name"]):
                        self.last_ready = time.monotonic()
                    self.ready[cells["name"]] = now_ready


class CountingProxy:
    """HTTP on 127.0.0.1 -> HTTPS to the API server; counts requests and response bytes."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.requests = 0
        self.bytes = 0
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
                upstream.close()

            def _forward_quietly(self):
                try:
                    self._forward()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client closed a watch early: nothing to count or to report

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


class Bench:
    def __init__(self, kube: Kube, work: Path, env: dict) -> None:
        self.kube, self.work, self.env = kube, work, env
        self.watch = ReadyWatch(kube)
        self.watch.start()

    def _env(self, kubeconfig: str | None = None, **extra: str) -> dict:
        env = {k: v for k, v in self.env.items() if not k.startswith("K8S_AUTH_")}
        env.update(KUBECONFIG=kubeconfig or self.kube.kubeconfig, K8S_AUTH_KUBECONFIG=kubeconfig or self.kube.kubeconfig,
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0", **extra)
        return env

    def _vars_file(self, count: int, tag: int) -> Path:
        path = self.work / f"vars-{count}-{tag}.yml"
        path.write_text(yaml.safe_dump(role_vars(count, tag)))
        return path

    def role(self, count: int, tag: int, *, kubeconfig: str | None = None, **extra: str) -> tuple[float, str]:
        start = time.monotonic()
        proc = subprocess.run([str(BIN / "ansible-playbook"), "kip.image_puller.deploy", "-e", f"@{self._vars_file(count, tag)}"],
                              env=self._env(kubeconfig, **extra), capture_output=True, text=True, check=False)
        took = time.monotonic() - start
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
        start = time.monotonic()
        applied = subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(manifests)], env=env,
                                 check=False, capture_output=True, text=True)
        if applied.returncode:
            raise SystemExit(f"kubectl apply failed: {applied.stderr}")
        subprocess.run(["kubectl", "rollout", "status", f"daemonset/{NAME}", "-n", NAMESPACE, "--timeout=30m"], env=env,
                       check=True, capture_output=True)
        return time.monotonic() - start

    def lag(self, returned: float) -> float:
        with self.watch.lock:
            return returned - self.watch.last_ready


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


def measure(bench: Bench, proxy: CountingProxy, nodes: int, count: int, reps: int, want_profile: bool) -> dict:
    tag = int(time.time()) % 100000 * 10
    manifests = [bench.render(count, tag + 2 * rep + 1) for rep in range(reps)]
    log(f"{nodes}x{count}: first deploy (not timed)")
    bench.role(count, tag)
    role_times, kubectl_times, role_lags, kubectl_lags = [], [], [], []
    for rep in range(reps):
        took, _out = bench.role(count, tag + 2 * rep + 2)
        role_times.append(took)
        role_lags.append(bench.lag(time.monotonic()))
        took = bench.kubectl(manifests[rep])
        kubectl_times.append(took)
        kubectl_lags.append(bench.lag(time.monotonic()))
        log(f"{nodes}x{count} rep {rep + 1}: role {role_times[-1]:.1f}s (lag {role_lags[-1]:.2f}s), "
            f"kubectl {kubectl_times[-1]:.1f}s (lag {kubectl_lags[-1]:.2f}s)")
    last_role_tag = tag + 2 * reps + 2
    bench.role(count, last_role_tag)
    noop_role, role_reads, noop_kubectl, kubectl_reads = noops(bench, proxy, count, last_role_tag)
    profiled = []
    if want_profile:
        _took, out = bench.role(count, last_role_tag + 1, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
        profiled = profile(out)
    return {
        "size": f"{nodes}x{count}", "reps": reps, "role": median(role_times), "kubectl": median(kubectl_times),
        "role_lag": median(role_lags), "kubectl_lag": median(kubectl_lags), "noop_role": noop_role, "noop_kubectl": noop_kubectl,
        "role_reads": role_reads, "kubectl_reads": kubectl_reads, "load": os.getloadavg(), "profile": profiled,
        "role_all": role_times, "kubectl_all": kubectl_times,
    }


NOOP_REPS = 3


def noops(bench: Bench, proxy: CountingProxy, count: int, tag: int) -> tuple:
    """Each tool's no-op of the images at this tag, timed NOOP_REPS times (median) and counted once through the proxy.

    Returns (role seconds, role (requests, bytes), kubectl seconds, kubectl (requests, bytes)).
    """
    noop_role = median([bench.role(count, tag)[0] for _rep in range(NOOP_REPS)])
    proxy.reset()
    bench.role(count, tag, kubeconfig=proxy.kubeconfig(bench.work))
    role_reads = (proxy.requests, proxy.bytes)
    manifests = bench.render(count, tag)
    noop_kubectl = median([bench.kubectl(manifests) for _rep in range(NOOP_REPS)])
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
            "load": os.getloadavg(), "profile": [], "role_all": [], "kubectl_all": []}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["4x3", "1001x50"], help="NODESxIMAGES (5001x50 on demand)")
    parser.add_argument("--reps", type=int, default=2, help="repetitions per tool and size (alternating)")
    parser.add_argument("--no-start", action="store_true", help="use the running cluster as it is (its node count is reported)")
    parser.add_argument("--profile", action="store_true", help="also run one deploy with the profile_tasks callback")
    parser.add_argument("--noop-only", action="store_true", help="only the no-ops, on the DaemonSet as it stands (with --no-start)")
    args = parser.parse_args()
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
            bench = Bench(kube, Path(work), dict(os.environ))
            proxy = CountingProxy(kube)
            if args.noop_only:
                rows.append(measure_noop(bench, proxy, nodes, count))
            else:
                rows.append(measure(bench, proxy, nodes, count, args.reps, args.profile))
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
        if row["profile"]:
            print(f"profile_tasks of one role deploy at {row['size']}:")
            print("\n".join(f"    {line}" for line in row["profile"]))


if __name__ == "__main__":
    main()
