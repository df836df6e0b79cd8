# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Which DaemonSets of one instance are no longer wanted (image_puller_daemonset's owner_labels).

The role makes one DaemonSet, or one per architecture; every one carries the instance's owner labels
(names.derived_names). When the shape changes (single <-> per architecture, an architecture gone),
the DaemonSets that carry them but are not among the definitions are the stale ones.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.kube import selector_string
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import ClusterReader
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import Retrier


def owned(daemonset: dict[str, Any], owners: dict[str, str]) -> bool:
    """Whether a DaemonSet carries every owner label (the API server's selection, checked again)."""
    labels = (daemonset.get("metadata") or {}).get("labels") or {}
    return bool(owners) and all(labels.get(key) == value for key, value in owners.items())


def stale(daemonsets: list[dict[str, Any]], owners: dict[str, str], keep) -> list[str]:
    """The names of the owned DaemonSets not in ``keep``, sorted."""
    keep = set(keep)
    return sorted(name for name in ((ds.get("metadata") or {}).get("name") for ds in daemonsets if owned(ds, owners))
                  if name not in keep)


def others(client: Any, retrier: Retrier, namespace: str, owners: dict[str, str], *, keep) -> list[str]:
    """The owned DaemonSets in the namespace other than ``keep`` (one list call, by label)."""
    if not owners:
        return []
    bad = sorted(str(key) for key, value in owners.items() if not isinstance(value, str) or not value)
    if bad:
        raise ImagePullerError(f"owner_labels must map label keys to non-empty values; check {', '.join(bad)}")
    reader = ClusterReader(client, retrier=retrier)
    found = list(reader.items("DaemonSet", "apps/v1", namespace=namespace,
                              label_selector=selector_string({"matchLabels": owners})))
    return stale(found, owners, keep)
