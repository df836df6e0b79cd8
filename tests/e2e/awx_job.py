# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run a playbook the way AWX runs a job: ansible-runner on a private data directory.

Layout, as AWX prepares it for a job:
  project/                  the project checkout: the playbook AWX lists, collections/ beside it
  inventory/hosts           the job's inventory
  env/extravars             survey answers and extra variables (JSON)
  env/envvars               what the attached credential injects (K8S_AUTH_*)
  env/cmdline               extra ansible-playbook options (-vvv, --diff, --check)
  artifacts/<ident>/        what ansible-runner writes: stdout, job_events/, fact_cache/, command

The job's process gets a clean environment (PATH, a private HOME), never the test's own
K8S_AUTH_* or KUBECONFIG, and never the checkout: the collection comes from the built tarball.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from support import REPO

BIN = Path(sys.executable).parent
PROJECT = REPO / "docs" / "awx-project"
# AWX's scan for playbooks (awx/main/utils/ansible.py): a .yml/.yaml file outside roles/, tasks/,
# group_vars/, host_vars/ and dot directories, with a line like this one.
AWX_PLAYBOOK_LINE = re.compile(r"^\s*?-?\s*?(?:hosts|include|import_playbook):\s*?.*?$")
AWX_SKIPPED_DIRS = {"roles", "tasks", "group_vars", "host_vars"}


def awx_lists(project: Path) -> list[str]:
    """The playbooks AWX offers for a job template in ``project``, by its own rules."""
    found = []
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        parts = relative.parts[:-1]
        if path.suffix not in (".yml", ".yaml") or not path.is_file():
            continue
        if AWX_SKIPPED_DIRS & set(parts) or any(part.startswith(".") for part in parts):
            continue
        lines = path.read_text(encoding="utf-8", errors="ignore").splitlines()
        if any(AWX_PLAYBOOK_LINE.match(line) for line in lines):
            found.append(str(relative))
    return found


def build_collection(out: Path) -> Path:
    """ansible-galaxy collection build of the checkout; returns the tarball."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out), str(REPO)],
                   check=True, capture_output=True, text=True)
    (tarball,) = out.glob("kip-image_puller-*.tar.gz")
    return tarball


def make_project(root: Path, tarball: Path) -> Path:
    """The AWX project: docs/awx-project plus the collection installed from the tarball into
    its collections/, where ansible-playbook looks first (beside the playbook)."""
    project = root / "project"
    shutil.copytree(PROJECT, project)
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "--force",
                    "-p", str(project / "collections"), str(tarball)],
                   check=True, capture_output=True, text=True, env=clean_env(root))
    return project


def clean_env(root: Path) -> dict[str, str]:
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": f"{BIN}{os.pathsep}/usr/bin{os.pathsep}/bin", "HOME": str(home), "LANG": "C.UTF-8"}


@dataclass
class Job:
    ident: str
    rc: int
    artifacts: Path
    events: list[dict] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return (self.artifacts / "stdout").read_text(encoding="utf-8", errors="replace")

    @property
    def stats(self) -> dict:
        (stats,) = [e["event_data"] for e in self.events if e.get("event") == "playbook_on_stats"]
        return stats

    def changed(self) -> int:
        return sum(self.stats.get("changed", {}).values())

    def failed_tasks(self) -> list[str]:
        return [e["event_data"].get("task", "") for e in self.events if e.get("event") == "runner_on_failed"
                and not e["event_data"].get("ignore_errors")]

    def task_paths(self) -> set[str]:
        return {e["event_data"]["task_path"] for e in self.events if e.get("event_data", {}).get("task_path")}


def run_job(root: Path, project: Path, ident: str, playbook: str, *, extravars: dict, credential: dict,
            cmdline: str = "") -> Job:
    """One AWX-shaped job in a private data directory of its own under ``root``.

    ``credential`` holds the inputs of an "OpenShift or Kubernetes API Bearer Token" credential
    (host, bearer_token, verify_ssl, ssl_ca_cert); they are injected as AWX injects them.
    """
    pdd = root / ident
    # AWX copies the project (with the collections installed at project sync) into each job.
    shutil.copytree(project, pdd / "project", symlinks=True)
    (pdd / "env").mkdir()
    (pdd / "inventory").mkdir()
    (pdd / "inventory" / "hosts").write_text("localhost ansible_connection=local ansible_python_interpreter="
                                             f"{sys.executable}\n", encoding="utf-8")
    (pdd / "env" / "extravars").write_text(json.dumps(extravars), encoding="utf-8")
    (pdd / "env" / "envvars").write_text(json.dumps(inject(credential, pdd / "env")), encoding="utf-8")
    if cmdline:
        (pdd / "env" / "cmdline").write_text(cmdline, encoding="utf-8")
    proc = subprocess.run([str(BIN / "ansible-runner"), "run", str(pdd), "-p", playbook, "--ident", ident, "-q"],
                          env=clean_env(root), capture_output=True, text=True, check=False, timeout=900)
    artifacts = pdd / "artifacts" / ident
    events = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((artifacts / "job_events").glob("*.json"))]
    return Job(ident=ident, rc=proc.returncode, artifacts=artifacts, events=events)


def inject(credential: dict, directory: Path) -> dict[str, str]:
    """The environment AWX's kubernetes_bearer_token credential type injects: K8S_AUTH_VERIFY_SSL
    is 'True' only when verify_ssl is set and CA data is present; the CA data goes to a file."""
    env = {"K8S_AUTH_HOST": credential["host"], "K8S_AUTH_API_KEY": credential["bearer_token"]}
    ca_data = credential.get("ssl_ca_cert") or ""
    env["K8S_AUTH_VERIFY_SSL"] = "True" if credential.get("verify_ssl", True) and ca_data else "False"
    if ca_data:
        ca_file = directory / "k8s_ca.crt"
        ca_file.write_text(ca_data, encoding="utf-8")
        ca_file.chmod(0o600)
        env["K8S_AUTH_SSL_CA_CERT"] = str(ca_file)
    return env


def secrets_found(artifacts: Path, secrets: dict[str, str]) -> list[str]:
    """``where: what`` for every secret value found in any file under ``artifacts``."""
    hits = []
    for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for what, value in secrets.items():
            if value and value.encode() in data:
                hits.append(f"{path.relative_to(artifacts)}: {what}")
    return hits
