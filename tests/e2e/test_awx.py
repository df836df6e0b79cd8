# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection as AWX runs it: ansible-runner jobs on private data directories laid out as
AWX lays them out (awx_job.py), the collection installed from the built tarball into the
project's collections/, survey answers as extra variables (strings, blanks, a textarea image
list), the environment of an "OpenShift or Kubernetes API Bearer Token" credential, and the
token of the least-privilege ServiceAccount that an administrator's run granted
(image_puller_deployer).

Every job's artifacts are searched for the actual secret values: the tokens, the admin client
key and the image pull secret's data. ansible-runner itself records the environment it was
given (the credential, token included) in artifacts/<ident>/command (mode 0600, never shown by
AWX); that one file is the only place a token may be, and only a token the credential injected.
"""
from __future__ import annotations

import base64
import json
import stat
import uuid
from pathlib import Path

import pytest
import yaml

from awx_job import awx_lists, build_collection, make_project, run_job, secrets_found
from support import REPO

pytestmark = pytest.mark.cluster

UNREACHABLE = "https://127.0.0.1:1"
SURVEY = json.loads((REPO / "docs" / "awx-project" / "survey_deploy.json").read_text(encoding="utf-8"))


def _cluster(kubeconfig: str) -> tuple[str, str, str]:
    """API server URL, CA data and client key (PEM) of the local cluster's admin kubeconfig."""
    config = yaml.safe_load(Path(kubeconfig).read_text(encoding="utf-8"))
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
    else:
        ca = (Path(kubeconfig).parent / cluster["certificate-authority"]).read_text(encoding="utf-8")
    if "client-key-data" in user:
        key = base64.b64decode(user["client-key-data"]).decode()
    else:
        key = (Path(kubeconfig).parent / user["client-key"]).read_text(encoding="utf-8")
    return cluster["server"], ca, key


def survey_answers(**answers) -> dict:
    """Extra variables as AWX hands over a survey: every question answered, optional ones blank."""
    out = {q["variable"]: q["default"] for q in SURVEY["spec"]}
    out.update(answers)
    return out


@pytest.fixture(scope="module")
def awx(tmp_path_factory, kubectl, kubeconfig):
    """An administrator's ServiceAccount, the deployer's, a target namespace with a pull secret,
    the project with the collection from the tarball, and the first (administrator) run."""
    root = tmp_path_factory.mktemp("awx")
    project = make_project(root, build_collection(root / "dist"))
    suffix = uuid.uuid4().hex[:8]
    home, target = f"awx-{suffix}", f"kip-awx-{suffix}"
    server, ca, client_key = _cluster(kubeconfig)
    kubectl.run("create", "namespace", home)
    kubectl.run("create", "serviceaccount", "admin", "-n", home)
    kubectl.run("create", "serviceaccount", "awx", "-n", home)
    kubectl.run("create", "clusterrolebinding", f"{home}-admin", "--clusterrole=cluster-admin", f"--serviceaccount={home}:admin")
    tokens = {name: kubectl.run("create", "token", name, "-n", home, "--duration=2h").stdout.strip() for name in ("admin", "awx")}
    pull_password = f"kip-pull-{uuid.uuid4().hex}"
    state = {
        "root": root, "project": project, "home": home, "target": target, "server": server, "ca": ca,
        "tokens": tokens, "pull_password": pull_password, "jobs": [],
        "deployer": {"kind": "ServiceAccount", "name": "awx", "namespace": home},
    }
    auth = base64.b64encode(f"kip:{pull_password}".encode()).decode()
    dockerconfig = json.dumps({"auths": {"registry.example.com": {"username": "kip", "password": pull_password, "auth": auth}}})
    state["secrets"] = {
        "admin token": tokens["admin"], "deployer token": tokens["awx"],
        "admin client key": "".join(client_key.strip().splitlines()[1:-1])[:64],
        "pull secret password": pull_password,
        "pull secret data (base64)": base64.b64encode(dockerconfig.encode()).decode()[:64],
        "pull secret auth": auth,
        # the docker config the role writes into the Secret it makes from image_puller_registry_credentials
        "pull secret data from credentials (base64)": base64.b64encode(json.dumps(
            {"auths": {"registry.example.com": {"auth": auth, "password": pull_password, "username": "kip"}}},
            sort_keys=True, separators=(",", ":")).encode()).decode()[:64],
    }

    def job(name, playbook, *, token="awx", host=None, cmdline="", **answers):
        credential = {"host": host or server, "bearer_token": tokens[token], "verify_ssl": True, "ssl_ca_cert": ca}
        extravars = survey_answers(**{"image_puller_namespace": target, **answers})
        result = run_job(root, project, f"{len(state['jobs']):02d}-{name}", playbook, extravars=extravars,
                         credential=credential, cmdline=cmdline)
        state["jobs"].append(result)
        return result

    state["job"] = job
    first = job("admin-deploy", "image_puller_deploy.yml", token="admin", image_puller_images="first=registry.example.com/first:1;",
                image_puller_deployer=state["deployer"], image_puller_wait_timeout=300)
    assert first.rc == 0, first.stdout[-3000:]
    kubectl.run("create", "secret", "docker-registry", "regcred", "-n", target, "--docker-server=registry.example.com",
                "--docker-username=kip", f"--docker-password={pull_password}")
    yield state
    kubectl.run("delete", "clusterrolebinding", f"{home}-admin", check=False)
    kubectl.run("delete", "namespace", target, home, "--wait=false", check=False)


def test_awx_lists_the_project_playbooks_and_the_survey_fits_the_role(awx):
    listed = awx_lists(awx["project"])
    # A wrapper that only imports the collection's playbook by its FQCN is not listed.
    wrapper = awx["project"] / "wrapper.yml"
    wrapper.write_text("---\n- name: Deploy\n  ansible.builtin.import_playbook: kip.image_puller.deploy\n", encoding="utf-8")
    assert "wrapper.yml" not in awx_lists(awx["project"])
    wrapper.unlink()
    assert "image_puller_deploy.yml" in listed and "image_puller_remove.yml" in listed
    role_options = yaml.safe_load((REPO / "roles" / "image_puller" / "meta" / "argument_specs.yml").read_text(
        encoding="utf-8"))["argument_specs"]["main"]["options"]
    for question in SURVEY["spec"]:
        assert question["variable"] in role_options, question["variable"]


def test_the_deployer_job_deploys_then_changes_nothing(awx, kubectl):
    images = "web=registry.example.com/web:1.0;\ntools=registry.example.com/tools:2.1;\n"  # a textarea answer
    answers = {"image_puller_images": images, "image_puller_image_pull_secrets": "regcred;", "image_puller_wait_timeout": 300}
    first = awx["job"]("deploy", "image_puller_deploy.yml", cmdline="-vvv --diff", **answers)
    assert first.rc == 0, first.stdout[-3000:]
    assert first.changed() > 0
    # The role came from the tarball installed into the project, not from the checkout.
    role_paths = {p for p in first.task_paths() if "/roles/image_puller/" in p}
    installed = f"{first.artifacts.parent.parent}/project/collections/ansible_collections/kip/image_puller/roles/image_puller/"
    assert role_paths and all(p.startswith(installed) for p in role_paths), role_paths
    ds = kubectl.json("get", "daemonset", "kubernetes-image-puller", "-n", awx["target"])
    assert [c["name"] for c in ds["spec"]["template"]["spec"]["containers"]] == ["web", "tools"]
    assert ds["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    kubectl.run("get", "networkpolicy", "kubernetes-image-puller", "-n", awx["target"])

    second = awx["job"]("deploy-again", "image_puller_deploy.yml", **answers)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.changed() == 0, [e["event_data"].get("task") for e in second.events
                                   if e.get("event") == "runner_on_ok" and e["event_data"].get("res", {}).get("changed")]


@pytest.mark.parametrize(
    ("name", "answers", "failing_task"),
    [
        pytest.param("unreachable-cluster-info", {"image_puller_host": UNREACHABLE}, "Recognise OpenShift",
                     id="a token as a survey answer with an unreachable API server stays hidden at Recognise OpenShift"),
        pytest.param("unreachable-deploy", {"image_puller_host": UNREACHABLE, "image_puller_platform": "kubernetes",
                                            "image_puller_wait_timeout": "3"}, "Apply the namespace, ConfigMap",
                     id="a token as a survey answer with an unreachable API server stays hidden at the deploy"),
    ],
)
def test_a_token_given_as_a_survey_answer_never_reaches_the_output(awx, name, answers, failing_task):
    job = awx["job"](name, "image_puller_deploy.yml", cmdline="-vvv --diff", image_puller_images="web=registry.example.com/web:1.0;",
                     image_puller_api_key=awx["tokens"]["awx"], **answers)
    assert job.rc != 0
    assert any(failing_task in task for task in job.failed_tasks()) or failing_task in job.stdout, job.stdout[-3000:]
    # the reason is still reported: kubernetes.core's error names the port, the collection's module says since when
    assert "port=1" in job.stdout or "the API server could not be reached since" in job.stdout, job.stdout[-3000:]


def test_a_failing_task_and_check_mode_show_no_secret(awx):
    forbidden = awx["job"]("forbidden", "image_puller_deploy.yml", cmdline="-vvv", image_puller_images="web=registry.example.com/web:1.0;",
                           image_puller_namespace="kube-system", image_puller_create_namespace="false")
    assert forbidden.rc != 0 and forbidden.failed_tasks(), forbidden.stdout[-3000:]
    check = awx["job"]("check-diff-token", "image_puller_deploy.yml", cmdline="--check --diff -vvv",
                       image_puller_images="web=registry.example.com/web:1.1;", image_puller_image_pull_secrets="regcred;",
                       image_puller_api_key=awx["tokens"]["awx"], image_puller_host=awx["server"])
    assert check.rc == 0, check.stdout[-3000:]


def test_registry_credentials_make_a_pull_secret_and_never_reach_a_job_event(awx, kubectl):
    """The deployer's jobs at -vvv --diff, again, and in check mode with a docker config: the password is
    checked for in every job event and artifact by test_no_secret_appears_in_any_job_artifact."""
    name = "kubernetes-image-puller-pull-registry-example-com"
    answers = {"image_puller_images": "web=registry.example.com/web:1.0;", "image_puller_wait_timeout": 300,
               "image_puller_registry_credentials": [{"registry": "registry.example.com", "username": "kip",
                                                      "password": awx["pull_password"]}]}
    first = awx["job"]("deploy-credentials", "image_puller_deploy.yml", cmdline="-vvv --diff", **answers)
    assert first.rc == 0, first.stdout[-3000:]
    assert kubectl.json("get", "secret", name, "-n", awx["target"])["type"] == "kubernetes.io/dockerconfigjson"
    ds = kubectl.json("get", "daemonset", "kubernetes-image-puller", "-n", awx["target"])
    assert ds["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": name}]
    again = awx["job"]("deploy-credentials-again", "image_puller_deploy.yml", cmdline="-vvv --diff", **answers)
    assert again.rc == 0 and again.changed() == 0, again.stdout[-3000:]
    config = json.dumps({"auths": {"registry.example.com": {"username": "kip", "password": awx["pull_password"]}}})
    check = awx["job"]("check-docker-config", "image_puller_deploy.yml", cmdline="--check --diff -vvv",
                       **{**answers, "image_puller_registry_credentials": [{"docker_config": config}]})
    assert check.rc == 0, check.stdout[-3000:]
    assert "(masked" in check.stdout


def test_a_misspelt_variable_stops_the_job_naming_the_right_one(awx):
    job = awx["job"]("misspelt", "image_puller_deploy.yml", image_puller_images="web=registry.example.com/web:1.0;",
                     image_puller_memory_limit="1Gi")
    assert job.rc != 0
    assert "did you mean image_puller_caching_memory_limit" in job.stdout


def test_remove_removes(awx, kubectl):
    # The deployer may not delete the namespace or list what else is in it: it leaves the
    # namespace to the administrator's removal, which also deletes the deployer's RBAC.
    job = awx["job"]("remove", "image_puller_remove.yml", cmdline="-vvv --diff", image_puller_create_namespace="false")
    assert job.rc == 0, job.stdout[-3000:]
    for kind in ("daemonset", "configmap", "serviceaccount", "networkpolicy"):
        assert kubectl.run("get", kind, "kubernetes-image-puller", "-n", awx["target"], check=False).returncode != 0, kind
    admin = awx["job"]("admin-remove", "image_puller_remove.yml", token="admin", cmdline="-vvv",
                       image_puller_deployer=awx["deployer"])
    assert admin.rc == 0, admin.stdout[-3000:]
    # The pull secret is not the role's: the namespace stays, and the secret's data was read
    # (listing what is left) but never shown.
    assert "Kept namespace" in admin.stdout and "Secret/regcred" in admin.stdout
    # the pull Secret the role made from credentials went with the deployer's remove
    assert "Secret/kubernetes-image-puller-pull-" not in admin.stdout
    assert kubectl.run("get", "secret", "kubernetes-image-puller-pull-registry-example-com", "-n", awx["target"],
                       check=False).returncode != 0
    assert kubectl.run("get", "role", "kubernetes-image-puller-deployer", "-n", awx["target"], check=False).returncode != 0


def test_no_secret_appears_in_any_job_artifact(awx):
    assert len(awx["jobs"]) >= 9, "runs after every other test of this module"
    leaks, recorded = [], []
    for job in awx["jobs"]:
        command = job.artifacts / "command"
        assert stat.S_IMODE(command.stat().st_mode) == 0o600
        hits = secrets_found(job.artifacts, awx["secrets"])
        # ansible-runner's record of the credential it injected; nothing else may hold a secret.
        leaks += [f"{job.ident}/{hit}" for hit in hits if not hit.startswith("command: ") or "token" not in hit]
        recorded += [hit for hit in hits if hit.startswith("command: ")]
    assert leaks == []
    # The search does find a secret where one is: the credential's token in ansible-runner's record.
    assert "command: deployer token" in recorded and "command: admin token" in recorded
