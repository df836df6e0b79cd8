# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The two shapes of the puller pod (image_puller_mode), and which of its containers cache an image.

daemon (upstream's shape): after the init container that copies the sleep, one long-running
container per image; the pod's footprint is the sum of them, so it grows with the images.
init: every image is an init container that runs the copied sleep for zero seconds, after the
copy; then one small container (KEEPER_CONTAINER, the puller image's own sleep) keeps the pod.
Kubernetes counts a pod as the larger of its largest init container and the sum of its
containers, so the footprint is one container's whatever the number of images.

The role's template writes the shapes; this module only reads them: a pod template of the init
shape carries MODE_ANNOTATION. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DAEMON = "daemon"
INIT = "init"
MODES = (DAEMON, INIT)
# On the pod template (and so on every pod) of the init shape; absent in the daemon shape.
MODE_ANNOTATION = "image-puller.kip/mode"
# The one container of the init shape: it keeps the pod running after the images' init containers.
KEEPER_CONTAINER = "keep-pod"
# The init container that copies the puller image's static sleep into the pod (both shapes, first).
COPY_CONTAINER = "copy-sleep"


def other_mode(mode: str) -> str:
    """The shape the pre-flight compares with: init for daemon, daemon for init."""
    return DAEMON if mode == INIT else INIT


def reserved_names(mode: str) -> tuple[str, ...]:
    """Container names the image list may not use in this mode."""
    return (COPY_CONTAINER, KEEPER_CONTAINER) if mode == INIT else (COPY_CONTAINER,)


def mode_of(obj: Mapping[str, Any]) -> str:
    """The shape of a pod template or a pod (by its annotation): init or daemon."""
    annotations = ((obj.get("metadata") or {}).get("annotations")) or {}
    return INIT if annotations.get(MODE_ANNOTATION) == INIT else DAEMON


def image_containers(obj: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], bool]]:
    """The containers of a pod template or pod that cache an image, in order, each with whether it is an init container.

    daemon: the containers. init: the init containers after the copy of the sleep.
    """
    spec = obj.get("spec") or {}
    if mode_of(obj) == INIT:
        inits = spec.get("initContainers") or []
        return [(container, True) for container in inits if container.get("name") != COPY_CONTAINER]
    return [(container, False) for container in spec.get("containers") or []]


def template_of(daemonset: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template of a DaemonSet (an empty mapping when it has none)."""
    return ((daemonset.get("spec") or {}).get("template")) or {}


def daemonset_images(daemonset: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The images a DaemonSet caches, in order: container name and image."""
    return [{"container": container.get("name"), "image": container.get("image")}
            for container, _init in image_containers(template_of(daemonset))]
