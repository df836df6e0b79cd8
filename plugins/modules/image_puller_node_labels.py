#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_puller_node_labels
short_description: Label the nodes on which every image of an image puller DaemonSet is cached
version_added: 1.0.0
author:
  - kip.image_puller developers (@kip-image-puller)
description:
  - Puts the label O(label) with the value V(cached) on each node where every image of the DaemonSet is cached, and
    takes it off every other node, so that workloads can require it with node affinity.
  - Which nodes have every image is what M(kip.image_puller.image_puller_info) reports in
    RV(kip.image_puller.image_puller_info#module:summary.fully_cached_nodes); the same code decides.
  - When the role made one DaemonSet per architecture (no DaemonSet O(name), but C(<name>-<arch>) ones, as
    M(kip.image_puller.image_puller_info) finds them), a node is labelled when every image of the DaemonSet of its
    architecture is cached; one label, C(image-puller.kip/<name>), for all of them.
  - Only nodes whose label is wrong are patched (a JSON merge patch of C(metadata.labels)), one request each.
  - The labels are as true as the moment the module ran; they are brought up to date by the next run (for example the
    next deploy of the role with C(image_puller_label_cached_nodes=true)), not continuously.
  - With O(state=absent) takes the label off every node.
extends_documentation_fragment: [kubernetes.core.k8s_auth_options, ansible.builtin.action_common_attributes,
  kip.image_puller._options, kip.image_puller._options.daemonset, kip.image_puller._options.wait_timeout]
options:
  label:
    description:
      - The label key. By default C(image-puller.kip/<name>); two pullers of the same name in different namespaces
        then share it, so give one of them another key.
    type: str
  state:
    description:
      - V(present) labels the nodes where every image is cached and unlabels the others; V(absent) unlabels every node.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    support: full
    details: Each patch is sent as a server-side dry run (C(dryRun=All)), so a missing permission shows, but no label changes.
  diff_mode:
    support: full
    details: The diff lists the labelled nodes before and after.
notes:
  - The connection user needs C(list) and C(patch) on nodes, and what M(kip.image_puller.image_puller_info) needs.
seealso:
  - module: kip.image_puller.image_puller_info
"""

EXAMPLES = r"""
- name: Label the nodes that cache every image
  kip.image_puller.image_puller_node_labels:
    name: kubernetes-image-puller
    namespace: k8s-image-puller

# A workload that should only start where its images are cached:
#   affinity:
#     nodeAffinity:
#       requiredDuringSchedulingIgnoredDuringExecution:
#         nodeSelectorTerms:
#           - matchExpressions:
#               - {key: image-puller.kip/kubernetes-image-puller, operator: In, values: [cached]}

- name: Take the label off every node
  kip.image_puller.image_puller_node_labels:
    name: kubernetes-image-puller
    namespace: k8s-image-puller
    state: absent
"""

RETURN = r"""
label:
  description: The label key.
  returned: always
  type: str
  sample: image-puller.kip/kubernetes-image-puller
labelled:
  description: The nodes the label was (in check mode, would be) put on.
  returned: always
  type: list
  elements: str
  sample: [kwok-node-2]
unlabelled:
  description: The nodes the label was (in check mode, would be) taken off.
  returned: always
  type: list
  elements: str
  sample: []
nodes:
  description: Every node that carries the label afterwards.
  returned: always
  type: list
  elements: str
  sample: [kwok-node-0, kwok-node-1, kwok-node-2]
summary:
  description: The summary of M(kip.image_puller.image_puller_info) the decision was made on; null with O(state=absent).
  returned: always
  type: dict
"""

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import run_module
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.node_labels import run


def main() -> None:
    run_module({
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str", "required": True},
        "label": {"type": "str"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    }, run)


if __name__ == "__main__":
    main()
