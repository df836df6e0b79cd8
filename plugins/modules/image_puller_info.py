#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_puller_info
short_description: Which node has which image of an image puller DaemonSet, and why not
version_added: 1.0.0
author:
  - kip.image_puller developers (@kip-image-puller)
description:
  - "When no DaemonSet O(name) exists but the role made one per architecture (C(<name>-<arch>), found by the labels
    C(app.kubernetes.io/instance=<name>) and C(app.kubernetes.io/managed-by=kip.image_puller)), reports all of them:
    RV(daemonsets) holds each one's report, RV(summary) covers all, RV(lines) and RV(summary_lines) are each one's in
    turn, and RV(nodes) lists each node as the DaemonSet it is eligible for sees it; the other keys are the first's."
  - Reads one image puller DaemonSet, the nodes and the DaemonSet's pods, and reports per node and per image where the
    caching stands. Only reads; never reports a change.
  - "Per node: whether the DaemonSet puts a pod there and if not why (C(nodeSelector), required node affinity, a taint
    not tolerated; the same code M(kip.image_puller.image_puller_quota) counts eligible nodes with), its pod, whether
    the pod is ready and runs the current pod template."
  - "Per image on that node: V(waiting) (no pod yet, not scheduled, or its init container has not finished),
    V(pulling) (the kubelet pulls the image or creates the container, C(ContainerCreating)), V(running), or V(failed)
    (C(ErrImagePull), C(ImagePullBackOff), C(InvalidImageName), C(CrashLoopBackOff), C(CreateContainerConfigError),
    ...), with the kubelet's reason and message, and the image ID (digest) the kubelet resolved. With the role's
    C(image_puller_mode=init) each image is an init container: V(completed) once it ran and exited 0 (the image is
    cached), and an image waits for the init containers before it."
  - An image counts as cached on a node once the kubelet has resolved its image ID there (it then created a container
    from it).
  - "A summary: nodes ready out of eligible, the images cached on every eligible node, and which node lacks which image
    and why."
  - With O(node_images=true) also the node's own image list (C(status.images)) as a second source. The kubelet lists at
    most 50 images there, the largest first, so an image missing from a list of 50 may still be on the node.
extends_documentation_fragment: [kubernetes.core.k8s_auth_options, ansible.builtin.action_common_attributes,
  kip.image_puller._options, kip.image_puller._options.daemonset, kip.image_puller._options.wait_timeout]
options:
  node_images:
    description:
      - Also read each node's image list (C(status.images)) and say per image whether the node lists it, in
        RV(nodes[].images[].listed).
      - The node list is then read in full (images included), which costs more on large clusters.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: The module only reads, in check mode as in a normal run.
  diff_mode:
    support: N/A
notes:
  - The connection user needs C(get) on the DaemonSet, C(list) on pods in its namespace and C(list) on nodes.
seealso:
  - module: kip.image_puller.image_puller_daemonset
  - module: kip.image_puller.image_puller_quota
"""

EXAMPLES = r"""
- name: Which node lacks which image
  kip.image_puller.image_puller_info:
    name: kubernetes-image-puller
    namespace: k8s-image-puller
  register: puller

- name: Show it
  ansible.builtin.debug:
    msg: "{{ puller.lines }}"

- name: Fail unless every image is cached on every eligible node
  ansible.builtin.assert:
    that: puller.summary.complete
    fail_msg: "{{ puller.summary.lacking | map(attribute='node') | unique | join(', ') }} lack images"
"""

RETURN = r"""
exists:
  description: Whether the DaemonSet exists. When it does not, RV(nodes) and RV(images) are empty.
  returned: always
  type: bool
  sample: true
images:
  description: The containers of the DaemonSet's pod template and their images, in order.
  returned: always
  type: list
  elements: dict
  sample: [{"container": "java", "image": "quay.io/example/java:17"}]
nodes:
  description:
    - One entry per node, by name, then one per pod whose node does not exist (RV(nodes[].eligible=false)).
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: The node's name (null for a pod meant for no node).
      type: str
      sample: kwok-node-0
    eligible:
      description: Whether the DaemonSet puts a pod on this node.
      type: bool
      sample: true
    not_eligible_because:
      description: Why the DaemonSet puts no pod there (null when eligible).
      type: str
      sample: "with untolerated taint dedicated=gpu:NoSchedule"
    pod:
      description: The DaemonSet's pod on the node (with two during a rolling update, the up-to-date one); null if none.
      type: str
      sample: kubernetes-image-puller-a1b2c
    phase:
      description: The pod's phase, null without a pod.
      type: str
      sample: Running
    ready:
      description: Whether every container of the pod is ready.
      type: bool
      sample: true
    updated:
      description: Whether the pod runs the DaemonSet's current pod template.
      type: bool
      sample: true
    node_images_truncated:
      description: Whether the node lists 50 images, the most the kubelet reports, so that more may be on the node.
      type: bool
      returned: with O(node_images=true)
      sample: false
    images:
      description: One entry per container of the pod template.
      type: list
      elements: dict
      contains:
        container:
          description: The container's name.
          type: str
        image:
          description: The image as the pod template names it.
          type: str
        state:
          description: V(waiting), V(pulling), V(running), V(failed) or V(completed) (init mode).
          type: str
          sample: running
        reason:
          description: The kubelet's reason (for example C(ImagePullBackOff)), or why the container is not created yet.
          type: str
        message:
          description: The kubelet's message.
          type: str
        image_id:
          description: The image ID the kubelet resolved (the digest), null until the image is on the node.
          type: str
          sample: quay.io/example/java@sha256:4c0f...
        cached:
          description: Whether the image is on the node (the kubelet resolved its image ID).
          type: bool
        listed:
          description: Whether the node's image list names the image (by reference or resolved digest).
          type: bool
          returned: with O(node_images=true)
summary:
  description:
    - Where the caching stands, as plain values; the status playbook and the role's closing message print it.
  returned: always
  type: dict
  contains:
    exists:
      description: Whether the DaemonSet exists.
      type: bool
    nodes:
      description: How many nodes were reported (all nodes, and pods' nodes that do not exist).
      type: int
      sample: 4
    eligible:
      description: How many nodes the DaemonSet puts a pod on.
      type: int
      sample: 3
    ready:
      description: How many eligible nodes have a ready pod.
      type: int
      sample: 3
    updated:
      description: How many eligible nodes have a pod of the current template.
      type: int
      sample: 3
    images:
      description: The images of the pod template, in order.
      type: list
      elements: str
    cached_everywhere:
      description: The images cached on every eligible node.
      type: list
      elements: str
    complete:
      description: Whether the DaemonSet exists and every image is cached on every eligible node.
      type: bool
    fully_cached_nodes:
      description: The eligible nodes on which every image is cached.
      type: list
      elements: str
    lacking:
      description: One entry per image missing on an eligible node, with keys C(node), C(container), C(image),
        C(state), C(reason) and C(message).
      type: list
      elements: dict
      sample:
        - node: kwok-node-1
          container: broken
          image: quay.io/example/app:pull-fails
          state: failed
          reason: ImagePullBackOff
          message: Back-off pulling image "quay.io/example/app:pull-fails"
lines:
  description: The report for a person, one line per node and per missing image, as the status playbook prints it.
  returned: always
  type: list
  elements: str
  sample:
    - "DaemonSet k8s-image-puller/kubernetes-image-puller: 3/3 eligible nodes ready, 3 up to date; 2/2 images cached on every
      eligible node"
    - "kwok-node-0: pod kubernetes-image-puller-a1b2c, ready; 2/2 images cached"
daemonsets:
  description: With one DaemonSet per architecture, the report of each (these return values), with its C(name).
  returned: when the role made one DaemonSet per architecture
  type: list
  elements: dict
summary_lines:
  description:
    - The first line of RV(lines), then one line per image an eligible node lacks; the role ends a deploy with them.
    - At most 20 lines of missing images, then one that says how many more (RV(summary.lacking) holds them all).
  returned: always
  type: list
  elements: str
  sample:
    - "DaemonSet k8s-image-puller/kubernetes-image-puller: 2/3 eligible nodes ready, 3 up to date; 1/2 images cached on every
      eligible node; 1 missing (image, node) pairs"
    - 'kwok-node-1: broken (quay.io/example/app:pull-fails): failed: ImagePullBackOff: Back-off pulling image
      "quay.io/example/app:pull-fails"'
"""

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import run_module
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.info_runner import run


def main() -> None:
    run_module({
        "name": {"type": "str", "required": True},
        "namespace": {"type": "str", "required": True},
        "node_images": {"type": "bool", "default": False},
    }, run)


if __name__ == "__main__":
    main()
