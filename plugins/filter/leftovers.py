# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The foreign_objects filter; documented in foreign_objects.yml beside this file."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

# What the cluster itself puts in every namespace (Kubernetes, and OpenShift's image builder,
# deployer and service CA), by kind.
CLUSTER_DEFAULTS = {
    "ServiceAccount": ("default", "builder", "deployer", "pipeline"),
    "ConfigMap": ("kube-root-ca.crt", "openshift-service-ca.crt"),
}
SERVICE_ACCOUNT_ANNOTATION = "kubernetes.io/service-account.name"


def foreign_objects(results):
    """k8s_info results (looped over item.kind) -> "Kind/name" of objects nobody but a person made."""
    if not isinstance(results, list):
        raise AnsibleFilterError(f"foreign_objects expects the results list of a looped k8s_info, got {type(results).__name__}")
    found = []
    for result in results:
        if not isinstance(result, dict) or not result.get("resources"):
            continue
        kind = (result.get("item") or {}).get("kind") or "Object"
        for obj in result["resources"]:
            metadata = obj.get("metadata") or {}
            name = metadata.get("name", "")
            if metadata.get("ownerReferences"):
                continue  # made by a controller; its owner is listed if it lives here
            if name in CLUSTER_DEFAULTS.get(kind, ()):
                continue
            if kind == "Secret" and SERVICE_ACCOUNT_ANNOTATION in (metadata.get("annotations") or {}):
                continue  # token and pull secrets the cluster keeps for a ServiceAccount
            found.append(f"{kind}/{name}")
    return found


class FilterModule:
    """kip.image_puller removal filters."""

    def filters(self):
        return {"foreign_objects": foreign_objects}
