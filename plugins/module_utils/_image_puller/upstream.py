# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to the kip.image_puller collection: not a public API, may change without notice.
#
# The upstream kubernetes-image-puller configuration (che-incubator/kubernetes-image-puller,
# cfg/envvars.go and deploy/helm/values.yaml): its ConfigMap keys, their defaults, and the role
# variable that carries each. This is the only place these names are spelled. Pure.
"""Upstream ConfigMap key names and defaults, and the role variable behind each."""

from __future__ import annotations

import json

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import to_upstream_string

IMAGES = "IMAGES"
DAEMONSET_NAME = "DAEMONSET_NAME"
DAEMONSET_ANNOTATIONS = "DAEMONSET_ANNOTATIONS"
NAMESPACE = "NAMESPACE"
CACHING_INTERVAL_HOURS = "CACHING_INTERVAL_HOURS"
CACHING_MEMORY_REQUEST = "CACHING_MEMORY_REQUEST"
CACHING_MEMORY_LIMIT = "CACHING_MEMORY_LIMIT"
CACHING_CPU_REQUEST = "CACHING_CPU_REQUEST"
CACHING_CPU_LIMIT = "CACHING_CPU_LIMIT"
NODE_SELECTOR = "NODE_SELECTOR"
IMAGE_PULL_SECRETS = "IMAGE_PULL_SECRETS"
AFFINITY = "AFFINITY"
TOLERATIONS = "TOLERATIONS"
KIP_IMAGE = "KIP_IMAGE"

# Upstream key -> (role variable, upstream default as the upstream ConfigMap holds it, Helm value).
# Defaults are those of the Helm chart and the OpenShift template; where the Go fallback differs
# (memory 1Mi/5Mi, image tag `next`) the chart wins, and the role pins the puller image to a
# release (see roles/image_puller/defaults/main.yml).
KEYS: dict[str, tuple[str, str, str]] = {
    IMAGES: ("image_puller_images", "", "configMap.images"),
    DAEMONSET_NAME: ("image_puller_daemonset_name", "kubernetes-image-puller", "deploymentName"),
    DAEMONSET_ANNOTATIONS: ("image_puller_daemonset_annotations", "{}", "configMap.daemonsetAnnotations"),
    NAMESPACE: ("image_puller_namespace", "k8s-image-puller", "(release namespace)"),
    CACHING_INTERVAL_HOURS: ("image_puller_caching_interval_hours", "1", "configMap.cachingIntervalHours"),
    CACHING_MEMORY_REQUEST: ("image_puller_caching_memory_request", "10Mi", "configMap.cachingMemoryRequest"),
    CACHING_MEMORY_LIMIT: ("image_puller_caching_memory_limit", "20Mi", "configMap.cachingMemoryLimit"),
    CACHING_CPU_REQUEST: ("image_puller_caching_cpu_request", ".05", "configMap.cachingCpuRequest"),
    CACHING_CPU_LIMIT: ("image_puller_caching_cpu_limit", ".2", "configMap.cachingCpuLimit"),
    NODE_SELECTOR: ("image_puller_node_selector", "{}", "configMap.nodeSelector"),
    IMAGE_PULL_SECRETS: ("image_puller_image_pull_secrets", "", "configMap.imagePullSecrets"),
    AFFINITY: ("image_puller_affinity", "{}", "configMap.affinity"),
    TOLERATIONS: ("image_puller_tolerations", "[]", "configMap.tolerations"),
    KIP_IMAGE: ("image_puller_puller_image", "quay.io/eclipse/kubernetes-image-puller:next", "image.repository + image.tag"),
}


def _json(value) -> str:
    # Upstream unmarshals these with encoding/json; compact, key-sorted output keeps the
    # ConfigMap (and its checksum) stable between runs.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# How a setting is written in the upstream ConfigMap, where it is not a plain string or JSON.
_FORMATS = {
    IMAGES: to_upstream_string,
    IMAGE_PULL_SECRETS: lambda names: "".join(f"{name};" for name in names),
}


def _text(value) -> str:
    return _json(value) if isinstance(value, (dict, list)) else str(value)


def configmap_data(settings: dict) -> dict[str, str]:
    """The upstream ConfigMap data from normalised settings (see settings.normalise): one entry per KEYS entry."""
    return {
        key: _FORMATS.get(key, _text)(settings[variable.removeprefix("image_puller_")])
        for key, (variable, _default, _helm) in KEYS.items()
    }


# ---- An upstream install in a namespace (for image_puller_adopt; see adopt.py) ----------------
# Facts from che-incubator/kubernetes-image-puller: the controller finds its own Deployment by the
# DEPLOYMENT_NAME environment variable (utils/clusterutils.go getImagePullerDeployment) and reads
# its settings from a ConfigMap through envFrom (deploy/helm/templates/app.yaml,
# deploy/openshift/app.yaml). The DaemonSet it creates carries this fixed selector and pod labels
# and an ownerReference to that Deployment (getDaemonset); on SIGTERM the controller deletes the
# DaemonSet in the foreground, pods and all (pkg/single-cluster/puller.go).
CONTROLLER_ENV = "DEPLOYMENT_NAME"
DAEMONSET_SELECTOR = {"test": "daemonset-test", "app.kubernetes.io/name": "image-puller"}
# The Helm chart's and OpenShift template's default names (deploy/helm/values.yaml).
DEFAULT_DEPLOYMENT = "kubernetes-image-puller"
DEFAULT_CONFIGMAP = "k8s-image-puller"
DEFAULT_SERVICE_ACCOUNT = "k8s-image-puller"
# The keys both the chart and the template always write; the role's own ConfigMap has them too,
# and is told apart by its managed-by label.
CONFIGMAP_SIGNATURE = (IMAGES, DAEMONSET_NAME)
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


def _containers(workload: dict) -> list:
    return ((((workload.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")) or []


def controller_configmaps(deployment: dict) -> list[str] | None:
    """The ConfigMaps an upstream controller Deployment reads (envFrom), or None when it is not one.

    The rule: a container of its pod template sets DEPLOYMENT_NAME, which only the upstream
    controller needs (whatever its image is called, mirrored or rebuilt)."""
    found = None
    for container in _containers(deployment):
        if any((env or {}).get("name") == CONTROLLER_ENV for env in container.get("env") or []):
            found = found or []
            found.extend(((source or {}).get("configMapRef") or {}).get("name") for source in container.get("envFrom") or []
                         if ((source or {}).get("configMapRef") or {}).get("name"))
    return found


def is_upstream_configmap(configmap: dict, *, managed_by: str, read_by: tuple = ()) -> bool:
    """An upstream ConfigMap: one a controller reads, or one holding the upstream keys that the role did not make."""
    metadata = configmap.get("metadata") or {}
    if (metadata.get("labels") or {}).get(MANAGED_BY_LABEL) == managed_by:
        return False
    return metadata.get("name") in read_by or all(key in (configmap.get("data") or {}) for key in CONFIGMAP_SIGNATURE)


def is_upstream_daemonset(daemonset: dict) -> bool:
    """A DaemonSet the upstream controller made: its fixed selector (the selector is immutable, so it stays)."""
    return ((daemonset.get("spec") or {}).get("selector") or {}).get("matchLabels") == DAEMONSET_SELECTOR


def daemonset_selector() -> str:
    """The upstream pods' label selector, as a string for a list call."""
    return ",".join(f"{key}={value}" for key, value in sorted(DAEMONSET_SELECTOR.items()))
