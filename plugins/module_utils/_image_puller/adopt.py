# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""What image_puller_upstream does: find an upstream kubernetes-image-puller install, and take it over.

The rules that tell the upstream objects are in upstream.py; this module reads and deletes.
Taking over never leaves a node without a puller pod:

1. ``find`` (read-only): the controller Deployment(s), the ConfigMap they read, the DaemonSet(s)
   with the upstream selector, and upstream pods no DaemonSet owns any more.
2. ``stop_controller``: delete each upstream DaemonSet with propagationPolicy Orphan (its pods keep
   running, owned by nobody), wait until it is gone, then delete the controller Deployment and wait
   until its pods are gone. The DaemonSet goes first because the controller deletes it in the
   foreground, pods and all, when it gets SIGTERM, and because the Deployment owns it (deleting the
   Deployment first would garbage-collect it). A DaemonSet the controller re-created meanwhile is
   orphaned too. Then the role's DaemonSet (which may have the same name) is rolled out by
   image_puller_daemonset while the orphaned pods still run.
3. ``clean_up`` (after that rollout): delete the orphaned upstream pods, and the controller's
   ServiceAccount with the RoleBindings that bind only it and the Roles only those use. The upstream
   ConfigMap stays, annotated as taken over: with image_puller_adopt the role keeps reading its
   settings from it, so a later run with the same variables changes nothing. Objects that carry the
   role's managed-by label are never touched.
"""

from __future__ import annotations

import time
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import kube, upstream
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import api_error, connect_within
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import ClusterReader, DynamicApiError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.names import FIELD_MANAGER

POLL_SECONDS = 0.5
# On an upstream ConfigMap the role has taken over: no controller reads it any more, the role does.
ADOPTED_ANNOTATION = "image-puller.kip/adopted-by"
RBAC = "rbac.authorization.k8s.io/v1"


def ref(kind: str, obj: dict[str, Any]) -> str:
    return f"{kind}/{kube.name_of(obj)}"


def _controller_owner(obj: dict[str, Any]) -> bool:
    return any(owner.get("controller") for owner in (obj.get("metadata") or {}).get("ownerReferences") or [])


def _ours(obj: dict[str, Any]) -> bool:
    return ((obj.get("metadata") or {}).get("labels") or {}).get(upstream.MANAGED_BY_LABEL) == FIELD_MANAGER


def find(reader: ClusterReader, namespace: str) -> dict[str, Any]:
    """Every part of an upstream install in the namespace, as objects (read-only)."""
    controllers, read_by = [], []
    for deployment in reader.items("Deployment", "apps/v1", namespace=namespace):
        configmaps = upstream.controller_configmaps(deployment)
        if configmaps is not None:
            controllers.append(deployment)
            read_by.extend(configmaps)
    configmaps = [configmap for configmap in reader.items("ConfigMap", "v1", namespace=namespace)
                  if upstream.is_upstream_configmap(configmap, managed_by=FIELD_MANAGER, read_by=tuple(read_by))]
    daemonsets = [daemonset for daemonset in reader.items("DaemonSet", "apps/v1", namespace=namespace)
                  if upstream.is_upstream_daemonset(daemonset)]
    pods = list(reader.items("Pod", "v1", namespace=namespace, label_selector=upstream.daemonset_selector()))
    accounts = sorted({((d["spec"].get("template") or {}).get("spec") or {}).get("serviceAccountName") or "default"
                       for d in controllers} - {"default"})
    return {"controllers": controllers, "configmaps": configmaps, "read_by": read_by, "daemonsets": daemonsets,
            "orphaned_pods": [pod for pod in pods if not _controller_owner(pod)], "pods": pods,
            "service_accounts": accounts}


def settings_configmap(found: dict[str, Any]) -> dict[str, Any] | None:
    """The ConfigMap whose settings the role takes over: the one the controller reads, else the only upstream one."""
    by_name = {kube.name_of(configmap): configmap for configmap in found["configmaps"]}
    candidates = [by_name[name] for name in dict.fromkeys(found["read_by"]) if name in by_name] or found["configmaps"]
    if len(candidates) > 1:
        raise ImagePullerError(
            "several upstream kubernetes-image-puller ConfigMaps and no controller that names one: "
            + ", ".join(ref("ConfigMap", configmap) for configmap in candidates)
            + "; delete the ones not in use, or set image_puller_config to the one to read")
    return candidates[0] if candidates else None


def report(found: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The module result of ``find``: what was found, the settings to read, and the message that stops the role."""
    objects = ([ref("Deployment", d) for d in found["controllers"]] + [ref("ConfigMap", c) for c in found["configmaps"]]
               + [ref("DaemonSet", d) for d in found["daemonsets"]])
    orphans = [ref("Pod", pod) for pod in found["orphaned_pods"]]
    adopted = [c for c in found["configmaps"] if ((c.get("metadata") or {}).get("annotations") or {}).get(ADOPTED_ANNOTATION)]
    result: dict[str, Any] = {"found": objects, "orphaned_pods": orphans, "installed": bool(objects or orphans),
                              # anything left to do but reading an already taken-over ConfigMap
                              "pending": bool(orphans or found["controllers"] or found["daemonsets"]
                                              or len(adopted) < len(found["configmaps"])),
                              "service_accounts": found["service_accounts"], "configmap": None, "config": None,
                              "message": None}
    configmap = settings_configmap(found) if objects else None
    if configmap is not None:
        data = dict(configmap.get("data") or {})
        # The role works in the namespace it found the install in; upstream's NAMESPACE can only name that one
        # (the controller reads its own Deployment from it), so it is not carried over.
        data.pop(upstream.NAMESPACE, None)
        result.update(configmap=kube.name_of(configmap), config={"apiVersion": "v1", "kind": "ConfigMap", "data": data})
    if result["installed"] and not result["pending"]:
        result["message"] = (
            f"namespace {namespace} holds ConfigMap/{result['configmap']}, the settings of an upstream kubernetes-image-puller"
            " install that image_puller_adopt took over earlier (annotation " + ADOPTED_ANNOTATION + "). Nothing was changed."
            " Keep image_puller_adopt: true to go on reading it (explicit image_puller_* variables win), or set the"
            " settings as variables and delete that ConfigMap.")
    elif result["installed"]:
        what = ", ".join(objects + ([f"{len(orphans)} upstream puller pod(s) no DaemonSet owns"] if orphans else []))
        controller = (" Its controller deletes and re-creates its DaemonSet every CACHING_INTERVAL_HOURS, also one the"
                      " role made under the same name." if found["controllers"] else "")
        result["message"] = (
            f"namespace {namespace} holds an upstream kubernetes-image-puller install: {what}.{controller} Nothing was"
            " changed. Either set image_puller_adopt: true to take it over (the role reads "
            + (f"ConfigMap/{result['configmap']}" if configmap is not None else "no upstream ConfigMap (none found)")
            + " into its settings, explicit image_puller_* variables win; it removes the controller Deployment and"
            " replaces the DaemonSet without a node losing its puller pod), or remove the upstream install first"
            " (helm uninstall, or oc delete of the template's objects), or deploy to another namespace.")
    return result


class Deleter:
    """Deletes by name with preconditions, as a dry run in check mode; waits until objects are gone."""

    def __init__(self, reader: ClusterReader, namespace: str, *, check_mode: bool, deadline: float) -> None:
        self.reader = reader
        self.namespace = namespace
        self.check_mode = check_mode
        self.deadline = deadline
        self.deleted: list[str] = []
        self.annotated: list[str] = []

    def delete(self, kind: str, api_version: str, obj: dict[str, Any], *, propagation: str = "Background") -> None:
        options: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation,
                                   "preconditions": {"uid": (obj.get("metadata") or {}).get("uid")}}
        if self.check_mode:
            # with a body the API server reads DeleteOptions from it alone, ignoring the dryRun query parameter
            options["dryRun"] = ["All"]
        resource = self.reader.resource(kind, api_version)
        name = kube.name_of(obj)
        try:
            self.reader.retrier.call(f"could not delete {kind} {name}", lambda: self.reader.dynamic.delete(
                resource, name=name, namespace=self.namespace, body=options))
        except DynamicApiError as exc:
            error = api_error(exc, f"delete {kind} {name} in namespace {self.namespace}")
            if error.not_found or error.status == 409:
                return  # gone already, or someone else's object of that name now
            raise error from exc
        self.deleted.append(ref(kind, obj))

    def annotate(self, kind: str, api_version: str, obj: dict[str, Any], annotations: dict[str, str]) -> None:
        """A JSON merge patch of metadata.annotations (a dry run in check mode)."""
        name = kube.name_of(obj)
        resource = self.reader.resource(kind, api_version)
        options = {"dry_run": "All"} if self.check_mode else {}
        try:
            self.reader.retrier.call(f"could not annotate {kind} {name}", lambda: self.reader.dynamic.patch(
                resource, body={"metadata": {"annotations": annotations}}, name=name, namespace=self.namespace,
                content_type="application/merge-patch+json", field_manager=FIELD_MANAGER, **options))
        except DynamicApiError as exc:
            raise api_error(exc, f"annotate {kind} {name} in namespace {self.namespace}") from exc
        self.annotated.append(ref(kind, obj))

    def wait_gone(self, what: str, still_there) -> None:
        """Poll until still_there() is empty; the check-mode run waits for nothing."""
        if self.check_mode:
            return
        while True:
            left = still_there()
            if not left:
                return
            if time.monotonic() >= self.deadline:
                raise ImagePullerError(f"timed out waiting until {what} {'are' if len(left) > 1 else 'is'} gone: "
                                       + ", ".join(left), deleted=self.deleted)
            time.sleep(POLL_SECONDS)


def stop_controller(reader: ClusterReader, namespace: str, found: dict[str, Any], deleter: Deleter) -> None:
    """Orphan the upstream DaemonSets (pods stay), then delete the controller and wait until its pods are gone."""

    def orphan_daemonsets(daemonsets: list[dict[str, Any]]) -> None:
        uids = set()
        for daemonset in daemonsets:
            deleter.delete("DaemonSet", "apps/v1", daemonset, propagation="Orphan")
            uids.add(daemonset["metadata"]["uid"])
        deleter.wait_gone("the upstream DaemonSets (deleted, orphaning their pods)", lambda: [
            ref("DaemonSet", d) for d in reader.items("DaemonSet", "apps/v1", namespace=namespace) if d["metadata"]["uid"] in uids])

    orphan_daemonsets(found["daemonsets"])
    selectors = []
    for deployment in found["controllers"]:
        deleter.delete("Deployment", "apps/v1", deployment)
        selectors.append(kube.selector_string(deployment["spec"].get("selector"), what=ref("Deployment", deployment)))
    deleter.wait_gone("the controller's pods", lambda: [
        ref("Pod", pod) for selector in selectors for pod in reader.items("Pod", "v1", namespace=namespace, label_selector=selector)])
    if deleter.check_mode:
        return
    # a DaemonSet the controller made again before it stopped (its refresh, or a restart)
    orphan_daemonsets([d for d in reader.items("DaemonSet", "apps/v1", namespace=namespace) if upstream.is_upstream_daemonset(d)])


def clean_up(reader: ClusterReader, namespace: str, found: dict[str, Any], deleter: Deleter, service_accounts: list[str]) -> None:
    """After the role's rollout: the orphaned upstream pods, the upstream ConfigMaps, the controller's account and RBAC."""
    for pod in found["orphaned_pods"]:
        deleter.delete("Pod", "v1", pod)
    for configmap in found["configmaps"]:
        if not ((configmap.get("metadata") or {}).get("annotations") or {}).get(ADOPTED_ANNOTATION):
            deleter.annotate("ConfigMap", "v1", configmap, {ADOPTED_ANNOTATION: FIELD_MANAGER})
    accounts = [account for account in (reader.get("ServiceAccount", "v1", name, namespace=namespace) for name in service_accounts)
                if account is not None and not _ours(account)]
    if not accounts:
        return
    names = {kube.name_of(account) for account in accounts}
    bindings = list(reader.items("RoleBinding", RBAC, namespace=namespace))

    def binds_only_these(binding: dict[str, Any]) -> bool:
        subjects = binding.get("subjects") or []
        return bool(subjects) and all(s.get("kind") == "ServiceAccount" and s.get("name") in names
                                      and s.get("namespace", namespace) == namespace for s in subjects)

    gone = [binding for binding in bindings if binds_only_these(binding) and not _ours(binding)]
    kept_roles = {(b.get("roleRef") or {}).get("name") for b in bindings if b not in gone and (b.get("roleRef") or {}).get("kind") == "Role"}
    roles = {(b.get("roleRef") or {}).get("name") for b in gone if (b.get("roleRef") or {}).get("kind") == "Role"} - kept_roles
    for binding in gone:
        deleter.delete("RoleBinding", RBAC, binding)
    for name in sorted(roles):
        role = reader.get("Role", RBAC, name, namespace=namespace)
        if role is not None and not _ours(role):
            deleter.delete("Role", RBAC, role)
    for account in accounts:
        deleter.delete("ServiceAccount", "v1", account)


def refuse_upstream(client: Any, retrier: Any, namespace: str) -> None:
    """image_puller_daemonset's upstream_check: fail, naming what was found, when the namespace holds an upstream install."""
    reader = ClusterReader(client, retrier=retrier)
    if reader.get("Namespace", "v1", namespace) is None:
        return
    result = report(find(reader, namespace), namespace)
    if result["installed"]:
        raise ImagePullerError(result["message"], changed=False, upstream={key: result[key] for key in ("found", "orphaned_pods", "configmap")})


def run(module: Any) -> dict[str, Any]:
    """The image_puller_upstream module."""
    params = module.params
    namespace = params["namespace"]
    client, retrier = connect_within(module)
    reader = ClusterReader(client, retrier=retrier)
    if reader.get("Namespace", "v1", namespace) is None:
        return {"changed": False, **report(_nothing(), namespace), "deleted": [], "annotated": []}
    found = find(reader, namespace)
    result = {"changed": False, **report(found, namespace), "deleted": [], "annotated": []}
    if params["step"] == "find" or not result["pending"]:
        return result
    deleter = Deleter(reader, namespace, check_mode=module.check_mode, deadline=time.monotonic() + params["wait_timeout"])
    if params["step"] == "stop_controller":
        stop_controller(reader, namespace, found, deleter)
    else:
        clean_up(reader, namespace, found, deleter, params["service_accounts"] or [])
    result.update(changed=bool(deleter.deleted or deleter.annotated), deleted=deleter.deleted, annotated=deleter.annotated)
    return result


def _nothing() -> dict[str, Any]:
    return {"controllers": [], "configmaps": [], "read_by": [], "daemonsets": [], "orphaned_pods": [], "pods": [],
            "service_accounts": []}
