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
  - "A whole deploy in one module run (each run loads the Kubernetes client, which costs more than the writes): with
    O(namespace_definition), O(objects), O(pull_secrets), O(quota_check) and O(restart) the module, before the
    DaemonSet and in this order, reads the namespace, runs the quota pre-flight of M(kip.image_puller.image_puller_quota),
    server-side applies the namespace, each object and each pull Secret, and restarts the pods. Bad input, a missing namespace that may not be
    created and a quota shortfall stop it before any write."
  - When nothing changed and the DaemonSet's status already says the rollout is done, the wait reads no pod, so a
    re-run costs the same on any number of nodes.
options:
  definition:
    description:
      - The image puller DaemonSet (C(apps/v1)), as a dictionary, for instance rendered from a template with
        P(ansible.builtin.template#lookup); M(kip.image_puller.image_puller_daemonset) and
        M(kip.image_puller.image_puller_quota) take the same definition.
      - C(status) and server-written metadata (C(resourceVersion), C(uid), C(managedFields), ...) are ignored.
      - Give this or O(definitions).
    type: dict
    required: false
  definitions:
    description:
      - Several DaemonSets of one deploy (the role makes one per architecture when an image has an C(arch) map), in
        one namespace, each as O(definition) would be; instead of O(definition).
      - The quota pre-flight (O(quota_check)) sums their needs (each one's pod times its eligible nodes), O(restart)
        restarts each, all are applied before the wait, and the wait covers each of them.
      - With one element it is the same as O(definition).
    type: list
    elements: dict
  owner_labels:
    description:
      - Labels that every DaemonSet of this deploy carries (the role passes the C(app.kubernetes.io/name),
        C(app.kubernetes.io/instance) and C(app.kubernetes.io/managed-by) of its instance).
      - With O(state=present), after every DaemonSet of O(definition) or O(definitions) rolled out (or was applied,
        with O(wait=false)), each other DaemonSet in the namespace that carries all of them is deleted, and waited
        for as with O(state=absent). So a shape that is no longer wanted (one DaemonSet instead of one per
        architecture, or an architecture that no image names any more) leaves nothing behind. They are listed in
        RV(pruned). When the rollout fails they stay.
      - With O(state=absent), they are all deleted, besides O(definition) and O(definitions).
      - Empty (the default) deletes nothing else.
    type: dict
    default: {}
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
  summary_nodes:
    description:
      - Whether RV(summary.nodes) (and each of RV(daemonsets)' C(summary.nodes)) lists the pods node by node.
      - With V(false) that list is empty and the rest of the result is the same. At a thousand nodes the list is most
        of the result, which Ansible copies and carries in every later task that reads the registered variable; the
        role M(kip.image_puller.image_puller) does not use it and passes V(false). The pods are read all the same (the
        wait confirms each one).
    type: bool
    default: true
  namespace_definition:
    description:
      - The Namespace of the DaemonSet (C(v1)), to server-side apply before anything else, with O(state=present).
      - A namespace that does not exist is created (when O(create_namespace) allows it). One that carries the same
        C(app.kubernetes.io/managed-by) label as this definition gets the whole definition. One that someone else made
        only gets the definition's C(pod-security.kubernetes.io/*) labels, or nothing when it has none.
      - Its name must be the namespace of the DaemonSet.
    type: dict
  create_namespace:
    description:
      - Whether a namespace given in O(namespace_definition) that does not exist may be created.
      - With V(false) and no such namespace, the module fails before any write.
    type: bool
    default: true
  objects:
    description:
      - Other objects to server-side apply, in this order, after the namespace and before the DaemonSet, with
        O(state=present), for example the ConfigMap, ServiceAccount, Role, RoleBinding, ClusterRole,
        ClusterRoleBinding and NetworkPolicy that go with the DaemonSet.
      - Each needs C(apiVersion), C(kind) and C(metadata.name). A namespaced object without C(metadata.namespace) goes
        into the DaemonSet's namespace; no other namespace is allowed.
      - Secrets are refused (their data would show in the task's arguments and result; pull Secrets go in
        O(pull_secrets)); so are a DaemonSet and a Namespace, which have options of their own.
      - They are applied under the field manager V(kip.image_puller), forcing conflicts, and never deleted by this
        module.
    type: list
    elements: dict
    default: []
  quota_check:
    description:
      - With O(state=present), first run the quota pre-flight of M(kip.image_puller.image_puller_quota) on
        O(definition) (with its O(kip.image_puller.image_puller_quota#module:skip_unchanged=true)) and fail before
        any write when the DaemonSet does not fit.
      - Its result is returned in RV(quota).
    type: bool
    default: false
  pull_secrets:
    description:
      - With O(state=present), Secrets (the pull Secrets of the DaemonSet) to server-side apply after O(objects) and
        before the DaemonSet.
      - Their O(pull_secrets[].data) is C(no_log), and the module never returns it. In RV(objects) a Secret shows
        only its kind, name and namespace, and in the diff every data value is V((masked)), or V((masked, changed))
        on the after side when it changes.
      - Each must carry the labels C(image-puller.kip/pull-secret-of=<instance>) and
        C(app.kubernetes.io/managed-by=kip.image_puller), where the instance is the C(app.kubernetes.io/instance) of
        O(owner_labels), or without it the DaemonSet's name. A Secret of the same name without that
        C(managed-by) label (one the module did not make) stops the module before any write.
      - Secrets in the namespace with both labels that are not given are deleted, so V([]) deletes them all; without
        this option no Secret is read or touched.
    type: list
    elements: dict
    suboptions:
      apiVersion:
        description: The API version of a Secret.
        type: str
        choices: [v1]
        default: v1
      kind:
        description: The kind.
        type: str
        choices: [Secret]
        default: Secret
      metadata:
        description: The Secret's metadata; C(namespace), when set, must be the DaemonSet's.
        type: dict
        required: true
      type:
        description: The Secret's type.
        type: str
        default: kubernetes.io/dockerconfigjson
      data:
        description: The Secret's data, base64-encoded values by key (for example C(.dockerconfigjson)).
        type: dict
        required: true
  compare_definitions:
    description:
      - With O(quota_check), other shapes of the DaemonSet (the role passes its other C(image_puller_mode)); the
        pre-flight reports what each would need beside O(definition)
        (O(kip.image_puller.image_puller_quota#module:compare_definitions)). Never applied.
    type: list
    elements: dict
    default: []
  restart:
    description:
      - With O(state=present), restart every pod of the existing DaemonSet now, as C(kubectl rollout restart) does
        (a rolling update), so that every node pulls every image again at once. A DaemonSet created by this run is not
        restarted.
      - The restart writes the pod-template annotation C(image-puller.kip/refreshed-at) with a field manager of its
        own, V(kip.image_puller-restart), so the server-side apply of O(definition) neither owns nor removes it.
      - Each run with V(true) on an existing DaemonSet reports a change.
    type: bool
    default: false
  upstream_check:
    description:
      - Before anything else (with either O(state)), look for an install of the upstream kubernetes-image-puller in the
        namespace, as M(kip.image_puller.image_puller_upstream) does, and fail, changing nothing, when there is one, as
        its controller deletes and re-creates its DaemonSet, also one of the same name made here.
      - The role M(kip.image_puller.image_puller) sets it unless C(image_puller_adopt) is true.
    type: bool
    default: false
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
      - When the namespace of O(namespace_definition) does not exist yet, the objects in it cannot be dry-run either;
        they are listed in RV(objects) as V(would be created), and the diff shows them as given.
  diff_mode:
    support: full
    details:
      - The diff compares the DaemonSet before and after, without C(status), C(managedFields), C(resourceVersion),
        C(generation), C(uid), C(creationTimestamp) and the controller's template generation annotation.
      - With O(namespace_definition) or O(objects), one diff per object, each headed by its kind, namespace and name,
        the DaemonSet last. The data of a Secret of O(pull_secrets) shows only as V((masked)) or
        V((masked, changed)), so no secret shows in a diff.
notes:
  - The connection user needs on DaemonSets C(get), C(create), C(patch), C(delete) and C(watch), and on pods and events
    C(list) (and C(watch) on pods for O(state=absent) and re-creation), in the namespace of the DaemonSet.
  - With O(namespace_definition), O(objects), O(quota_check) or O(restart), the connection user also needs C(get) and
    C(patch) on those objects (C(create) for new ones), and what M(kip.image_puller.image_puller_quota) reads.
  - With O(pull_secrets), the connection user also needs C(get), C(list), C(create), C(patch) and C(delete) on Secrets in
    the namespace of the DaemonSet.
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
summary_lines:
  description:
    - The summary M(kip.image_puller.image_puller_info) gives, as lines for a person, as in its
      RV(kip.image_puller.image_puller_info#module:summary_lines). First nodes ready out of eligible and images cached
      on every eligible node, then one line per image an eligible node lacks, with the kubelet's reason (at most 20,
      then one that says how many more).
    - When the DaemonSet's status says the rollout is complete, it comes from that status alone (every eligible node
      then runs every image), so a re-run reads no node and no pod. With O(wait=false) and a rollout still under way,
      a headline from the status's counts (or, before the DaemonSet controller has observed the new template, that
      it has not, since the counts are still the previous template's), then the problems the look at the pods found
      (which image is cached where takes every pod in full; C(ansible-playbook kip.image_puller.status) reads them).
      Otherwise, and in check mode (where it describes the cluster as it is, not the dry run), from reading the nodes
      and the pods.
  returned: O(state=present), unless the module failed
  type: list
  elements: str
  sample:
    - "DaemonSet k8s-image-puller/kubernetes-image-puller: 3/3 eligible nodes ready, 3 up to date; 2/2 images cached on every eligible node"
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
        - Read from the pod Table (when the wait ended with the rollout done, and with O(wait=false) while no pod
          reports a problem), only the pods of the current template, and C(phase) is null for a pod whose status is
          not a phase (for example C(ContainerCreating)).
        - Empty in check mode, when the API server could not be reached, when nothing changed and the
          DaemonSet's status already said the rollout was done (then no pod is read; O(wait=false) reads them), and
          with O(summary_nodes=false).
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
objects:
  description:
    - What was done with the namespace (O(namespace_definition)) and each of O(objects), in order, with keys C(kind),
      C(name), C(namespace) (null for a cluster-scoped object), C(changed) and C(action).
    - C(action) is one of V(created), V(updated), V(unchanged), V(labelled (pod security only)) (a namespace someone
      else made), V(deleted) (a Secret the module made for the DaemonSet that O(pull_secrets) no longer gives) and, in
      check mode in a namespace that does not exist yet, V(would be created).
    - On a failure, the objects applied before it.
  returned: O(state=present)
  type: list
  elements: dict
  sample: [{"kind": "ConfigMap", "name": "kubernetes-image-puller", "namespace": "image-puller", "changed": false, "action": "unchanged"}]
quota:
  description:
    - The result of the quota pre-flight with O(quota_check=true) (the return values of
      M(kip.image_puller.image_puller_quota), such as C(fits), C(unchanged), C(rows) and C(shortfalls)); null without it.
  returned: O(state=present)
  type: dict
  sample: {"fits": true, "unchanged": true, "eligible_nodes": 3}
restarted:
  description: Whether the pods of the existing DaemonSet were (or in check mode would be) restarted (O(restart)).
  returned: O(state=present)
  type: bool
  sample: false
daemonsets:
  description:
    - With more than one DaemonSet in O(definitions), the result of each, in order, with its C(name) and the keys
      RV(result), RV(summary), RV(problems), RV(recreated) and RV(recreate_reason) (the top-level keys then are those of
      the first, except C(changed), RV(recreated), RV(recreate_reason) and RV(problems), which cover all).
  returned: O(state=present) with more than one DaemonSet
  type: list
  elements: dict
  sample: [{"name": "kubernetes-image-puller-amd64", "changed": false, "summary": {"desired": 3, "ready": 3}}]
pruned:
  description: The DaemonSets deleted because they carry O(owner_labels) but are not among the definitions.
  returned: O(state=present) with O(owner_labels)
  type: list
  elements: str
  sample: ["kubernetes-image-puller"]
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
        "definition": {"type": "dict"},
        "definitions": {"type": "list", "elements": "dict"},
        "owner_labels": {"type": "dict", "default": {}},
        "namespace": {"type": "str"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        "wait": {"type": "bool", "default": True},
        "summary_nodes": {"type": "bool", "default": True},
        "namespace_definition": {"type": "dict"},
        "create_namespace": {"type": "bool", "default": True},
        "objects": {"type": "list", "elements": "dict", "default": []},
        "quota_check": {"type": "bool", "default": False},
        "compare_definitions": {"type": "list", "elements": "dict", "default": []},
        "restart": {"type": "bool", "default": False},
        # Only the data of each Secret is a secret (no_log below); the names and labels are shown.
        "pull_secrets": {"type": "list", "elements": "dict", "no_log": False, "options": {
            "apiVersion": {"type": "str", "default": "v1", "choices": ["v1"]},
            "kind": {"type": "str", "default": "Secret", "choices": ["Secret"]},
            "metadata": {"type": "dict", "required": True},
            "type": {"type": "str", "default": "kubernetes.io/dockerconfigjson"},
            "data": {"type": "dict", "required": True, "no_log": True},
        }},
        "upstream_check": {"type": "bool", "default": False},
    }, run, mutually_exclusive=[("definition", "definitions")], required_one_of=[("definition", "definitions")])


if __name__ == "__main__":
    main()
