#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_puller_daemonset
short_description: Apply an image puller DaemonSet and wait until every eligible node runs it
version_added: 1.0.0
author:
  - kip.image_puller developers (@kip-image-puller)
description:
  - Applies a DaemonSet with server-side apply under the field manager V(kip.image_puller), forcing conflicts, so the
    fields the definition sets belong to this module.
  - Re-creates the DaemonSet only when an immutable field (C(spec.selector)) changes, and says so in RV(recreated) and
    RV(recreate_reason). Otherwise the running pods are replaced by the DaemonSet's own rolling update.
  - Waits by watching the DaemonSet until the rollout is done by C(kubectl rollout status)'s rule
    (C(observedGeneration) at least C(generation), C(updatedNumberScheduled) and C(numberAvailable) at least
    C(desiredNumberScheduled)) and every pod of the current template has all its containers ready.
  - Progress is read from the DaemonSet's status; its pods are read only when the status says done (one row per pod,
    from the table C(kubectl get pods) prints) and, for a diagnosis, when the status has not moved for 5 seconds (at
    most every 10 seconds).
  - When O(wait_timeout) runs out, the module fails with one line per problem naming the image, the container, the
    node and the reason (for example C(ImagePullBackOff), C(ErrImagePull), C(CreateContainerConfigError),
    C(CrashLoopBackOff), C(Unschedulable), or a C(FailedCreate) refusal such as an exceeded quota), and returns the
    same in RV(problems).
  - It fails that way before the timeout when, for 60 seconds, every updated pod that is not ready has failed to pull
    an image or to create a container and nothing else is wrong, since no waiting fixes that.
  - With O(state=absent) deletes the DaemonSet in the foreground and waits until its pods are gone.
options:
  state:
    description:
      - V(present) creates or updates the DaemonSet; V(absent) deletes it, and then only the name and namespace of
        O(definition) are used.
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - With O(state=present) wait until the rollout is done; with O(state=absent) wait until the DaemonSet and its
        pods are gone.
      - Never waits in check mode.
      - The wait, and a re-creation or a deletion, count against O(wait_timeout).
    type: bool
    default: true
extends_documentation_fragment: [kubernetes.core.k8s_auth_options, ansible.builtin.action_common_attributes,
  kip.image_puller._options, kip.image_puller._options.definition, kip.image_puller._options.wait_timeout]
attributes:
  check_mode:
    support: full
    details:
      - Every write is a server-side dry run (C(dryRun=All)), so admission runs but nothing is stored.
      - Pods are not created in check mode, so refusals of pods (quota, PodSecurity) only show in a real run.
      - When the DaemonSet would be re-created, or its namespace does not exist yet, RV(result) is the definition as
        given rather than the object the server would store.
  diff_mode:
    support: full
    details:
      - The diff compares the DaemonSet before and after, without C(status), C(managedFields), C(resourceVersion),
        C(generation), C(uid), C(creationTimestamp) and the controller's template generation annotation.
notes:
  - The connection user needs on DaemonSets C(get), C(create), C(patch), C(delete) and C(watch), and on pods and events
    C(list) (and C(watch) on pods for O(state=absent) and re-creation), in the namespace of the DaemonSet.
  - A DaemonSet with the C(OnDelete) update strategy replaces no pod on its own; the wait then only asks that every
    existing pod is ready and available.
seealso:
  - module: kubernetes.core.k8s
  - module: kip.image_puller.image_puller_quota
"""

EXAMPLES = r"""
- name: Keep two images cached on every node
  kip.image_puller.image_puller_daemonset:
    definition: "{{ lookup('ansible.builtin.template', 'daemonset.yaml.j2') | ansible.builtin.from_yaml }}"
    wait_timeout: 600

- name: Apply with the connection of an AWX Kubernetes credential (K8S_AUTH_* variables) set once for the group
  module_defaults:
    group/kip.image_puller.image_puller:
      context: production
  kip.image_puller.image_puller_daemonset:
    namespace: image-puller
    definition:
      apiVersion: apps/v1
      kind: DaemonSet
      metadata:
        name: kubernetes-image-puller
      spec:
        selector:
          matchLabels:
            app.kubernetes.io/name: kubernetes-image-puller
        template:
          metadata:
            labels:
              app.kubernetes.io/name: kubernetes-image-puller
          spec:
            containers:
              - name: java
                image: quay.io/example/java:17
                command: [/bin/sleep, infinity]
                resources:
                  requests: {cpu: 50m, memory: 10Mi}
                  limits: {cpu: 200m, memory: 20Mi}

- name: Remove the DaemonSet and wait until its pods are gone
  kip.image_puller.image_puller_daemonset:
    state: absent
    definition:
      metadata:
        name: kubernetes-image-puller
        namespace: image-puller
"""

RETURN = r"""
result:
  description:
    - The DaemonSet as the API server returned it, without C(metadata.managedFields).
    - With O(state=present), the DaemonSet as last read (in check mode, as the server-side dry run returned it).
    - With O(state=absent), the DaemonSet as it was before the deletion; empty if there was none.
  returned: always
  type: dict
summary:
  description: Where the rollout stands, from the DaemonSet's status and its pods.
  returned: O(state=present)
  type: dict
  contains:
    desired: {description: Nodes that should run a pod (C(desiredNumberScheduled))., type: int, sample: 3}
    current: {description: Nodes that run a pod of any template (C(currentNumberScheduled))., type: int, sample: 3}
    ready: {description: Nodes with a ready pod (C(numberReady))., type: int, sample: 3}
    updated: {description: Nodes with a pod of the current template (C(updatedNumberScheduled))., type: int, sample: 3}
    available: {description: Nodes with an available pod (C(numberAvailable))., type: int, sample: 3}
    misscheduled: {description: Nodes that run a pod but should not (C(numberMisscheduled))., type: int, sample: 0}
    images:
      description: The containers of the pod template and their images, in order.
      type: list
      elements: dict
      sample: [{"container": "java", "image": "quay.io/example/java:17"}]
    nodes:
      description:
        - One entry per pod of the DaemonSet, by node, with keys C(node), C(pod), C(phase), C(ready) and C(updated).
        - When the wait ended with the rollout done, only the pods of the current template, and C(phase) is null for a
          pod whose status is not a phase (for example C(ContainerCreating)).
        - Empty in check mode and when the API server could not be reached.
      type: list
      elements: dict
      sample: [{"node": "kwok-node-0", "pod": "kubernetes-image-puller-a1b2c", "phase": "Running", "ready": true, "updated": true}]
problems:
  description:
    - Why pods are not running, one entry per failing container or unschedulable pod, pods in node order, then the
      DaemonSet controller's refusals to create pods (C(FailedCreate) events since the last apply).
    - Keys C(node), C(pod), C(container), C(init_container), C(image), C(reason) and C(message); those that do not apply
      are null (a refusal names no node, an unschedulable pod no container).
    - Empty in check mode and when the rollout is done.
  returned: always
  type: list
  elements: dict
  sample:
    - node: kwok-node-1
      pod: kubernetes-image-puller-d3e4f
      container: broken
      init_container: false
      image: quay.io/example/app:pull-fails
      reason: ImagePullBackOff
      message: Back-off pulling image "quay.io/example/app:pull-fails"
unreachable_since:
  description:
    - When (UTC, C(HH:MM:SS UTC)) the API server stopped answering, when the module failed because it could still not
      reach it when O(wait_timeout) ran out.
  returned: failure, when the API server could not be reached
  type: str
  sample: "14:03:12 UTC"
recreated:
  description: Whether the DaemonSet was (or in check mode would be) deleted and created again for an immutable change.
  returned: always
  type: bool
  sample: false
recreate_reason:
  description: Which immutable field changed, when RV(recreated) is true; null otherwise.
  returned: always
  type: str
  sample: 'spec.selector is immutable and changes from {"matchLabels": {"app": "a"}} to {"matchLabels": {"app": "b"}}'
"""

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import run_module
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.runner import run


def main() -> None:
    run_module({
        "definition": {"type": "dict", "required": True},
        "namespace": {"type": "str"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "wait": {"type": "bool", "default": True},
    }, run)


if __name__ == "__main__":
    main()
