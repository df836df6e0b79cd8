# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to the kip.image_puller collection: not a public API, may change without notice.
#
# Apart from settings.py, which checks the role variables, so that the modules that only need a
# name do not load (and compile, from their AnsiballZ zip, on every run) the checker. Pure.
"""Every name derived from the DaemonSet's name and namespace, and the fixed names beside them."""

from __future__ import annotations

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import pull_secrets
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.mode import (
    COPY_CONTAINER,
    KEEPER_CONTAINER,
    MODE_ANNOTATION,
)

# The label image_puller_node_labels puts on each node where every image is cached.
NODE_LABEL_PREFIX = "image-puller.kip/"
NODE_LABEL_VALUE = "cached"
# Who writes what the role makes: the server-side apply field manager and the managed-by label.
FIELD_MANAGER = "kip.image_puller"
# The init container that copies the puller image's static sleep into the pod; its name is reserved in the image list.
INIT_CONTAINER = COPY_CONTAINER


def node_label_key(daemonset_name: str) -> str:
    """The node label that says every image of the DaemonSet is cached on the node."""
    return NODE_LABEL_PREFIX + daemonset_name


def derived_names(daemonset_name: str, namespace: str, labels: dict) -> dict:
    """Every name the role derives from the DaemonSet's name and namespace, written here once."""
    selector = {"app.kubernetes.io/name": "kubernetes-image-puller", "app.kubernetes.io/instance": daemonset_name}
    return {
        # the pod selector: fixed for a DaemonSet name (a DaemonSet's selector is immutable)
        "selector": selector,
        "object_labels": {**labels, **selector, "app.kubernetes.io/managed-by": FIELD_MANAGER},
        # every DaemonSet of this instance carries these (one, or one per architecture): what the role owns
        "owner_labels": {**selector, "app.kubernetes.io/managed-by": FIELD_MANAGER},
        "managed_by": FIELD_MANAGER,
        "field_manager": FIELD_MANAGER,
        "init_container": INIT_CONTAINER,
        # image_puller_mode init: the container that keeps the pod, and the annotation that marks the shape
        "keeper_container": KEEPER_CONTAINER,
        "mode_annotation": MODE_ANNOTATION,
        "node_label": node_label_key(daemonset_name),
        # on each pull Secret made from image_puller_registry_credentials (see pull_secrets.py)
        "pull_secret_label": pull_secrets.LABEL,
        "deployer_name": f"{daemonset_name}-deployer",
        # cluster-scoped names must be unique across namespaces
        "deployer_cluster_name": f"{FIELD_MANAGER}:{namespace}:{daemonset_name}:deployer",
    }
