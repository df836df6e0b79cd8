#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_puller_quota
short_description: Check before deploying that an image puller DaemonSet fits the namespace's quotas and limit ranges
version_added: 1.0.0
author:
  - kip.image_puller developers (@kip-image-puller)
description:
  - "A pre-flight assertion for a DaemonSet: computes what its pods will count against every quota of the namespace and
    fails the task (with O(fail_on_insufficient=true), the default) when they do not fit, before anything is applied.
    Without it, a DaemonSet is accepted but its pods are refused one node at a time (C(FailedCreate) events) and the
    rollout never completes."
  - It only reads from the cluster (with O(skip_unchanged) it also dry-runs an apply) and never reports a change. It is
    not named C(*_info) because its purpose is to fail the play; with O(fail_on_insufficient=false) it only reports,
    like an info module.
  - "The footprint of one pod, per resource: the larger of the sum over its containers (sidecar init containers
    included) and its largest init container, plus C(spec.overhead); values left unset are filled in as admission would
    (a limit without a request makes the request; LimitRange C(default) and C(defaultRequest))."
  - "Eligible nodes, from the Node list read in pages of 500: C(nodeSelector), required node affinity
    (C(In), C(NotIn), C(Exists), C(DoesNotExist), C(Gt), C(Lt), C(matchFields) on C(metadata.name)), and C(NoSchedule)
    and C(NoExecute) taints against the pod's tolerations plus those the DaemonSet controller adds
    (C(node.kubernetes.io/unschedulable), C(not-ready), C(unreachable), C(disk-pressure), C(memory-pressure),
    C(pid-pressure), and C(network-unavailable) for host-network pods)."
  - "Needed = footprint x eligible nodes, C(pods) = eligible nodes and C(count/daemonsets.apps) = 1, less what the
    current DaemonSet of the same name already holds, so an update is not refused for the quota it already uses.
    Its pods are counted from the pod Table (a status per pod) by template revision, with one pod of each revision
    read in full; a pod whose status could be a finished pod's is read for its phase."
  - Compared with C(spec.hard) minus C(status.used) of every ResourceQuota in the namespace whose scopes and
    scopeSelector match the pods (C(BestEffort), C(NotBestEffort), C(Terminating), C(NotTerminating), C(PriorityClass),
    C(CrossNamespacePodAffinity)), and with every C(quota.openshift.io/v1) ClusterResourceQuota that selects the
    namespace (C(spec.quota.hard) minus C(status.total.used)) when that API exists.
  - Every LimitRange of the namespace is checked against one pod (Container C(min), C(max), C(maxLimitRequestRatio);
    Pod C(min) and C(max) on the sums of the containers).
  - A quota that tracks C(cpu) or C(memory) requests or limits refuses pods whose containers set none; that is reported
    as a shortfall too.
  - Quantities are compared exactly, as fractions, never as floating point numbers.
options:
  fail_on_insufficient:
    description:
      - Fail the task when the DaemonSet does not fit. The message gives the arithmetic, the quota, the resource, what
        is needed and what is available.
      - With V(false) the module only reports, in RV(fits) and RV(rows).
    type: bool
    default: true
  skip_unchanged:
    description:
      - When the DaemonSet exists and a server-side dry-run apply of O(definition) leaves its pod template and selector
        as they are, applying it adds no pod and no resource; the module then reads nothing more (no nodes, quotas or
        pods, so its cost does not grow with the cluster) and returns RV(unchanged=true) with RV(fits=true).
      - The dry run needs C(patch) on DaemonSets; without it, or when it fails, the full check runs.
    type: bool
    default: false
  compare_definitions:
    description:
      - Other shapes of the same DaemonSet, for example the role's other C(image_puller_mode). For each, what one pod
        and the eligible nodes would need is reported in RV(shapes) and RV(messages), beside O(definition)'s.
      - They are not compared with the quotas and do not change RV(fits).
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it does the same in check mode.
  diff_mode:
    support: none
extends_documentation_fragment: [kubernetes.core.k8s_auth_options, ansible.builtin.action_common_attributes,
  kip.image_puller._options, kip.image_puller._options.definition, kip.image_puller._options.wait_timeout]
notes:
  - "The connection user needs C(list) on nodes (cluster-wide); C(list) on resourcequotas, limitranges and pods and
    C(get) on pods and daemonsets in the namespace; and, optionally, C(get) on the namespace and C(list) on priorityclasses and
    clusterresourcequotas (else on appliedclusterresourcequotas in the namespace). What it cannot read is said in
    RV(notes)."
  - "Not modelled: the extra pods of a rolling update with C(maxSurge) above 0, and node selectors that OpenShift
    project annotations (C(openshift.io/node-selector)) add to pods."
seealso:
  - module: kip.image_puller.image_puller_daemonset
  - module: kubernetes.core.k8s
  - name: Resource quotas
    description: Scopes, and what quota counts for pods.
    link: https://kubernetes.io/docs/concepts/policy/resource-quotas/
"""

EXAMPLES = r"""
- name: Fail before deploying when the DaemonSet does not fit the quotas
  kip.image_puller.image_puller_quota:
    definition: "{{ lookup('ansible.builtin.template', 'daemonset.yaml.j2') | ansible.builtin.from_yaml }}"

- name: Only report
  kip.image_puller.image_puller_quota:
    definition: "{{ lookup('ansible.builtin.template', 'daemonset.yaml.j2') | ansible.builtin.from_yaml }}"
    namespace: k8s-image-puller
    fail_on_insufficient: false
  register: __image_puller_quota

- name: Show the arithmetic
  ansible.builtin.debug:
    msg: "{{ __image_puller_quota.messages }}"
"""

RETURN = r"""
unreachable_since:
  description: Since when (C(HH:MM:SS UTC)) the API server did not answer, when it still did not as O(wait_timeout) ran out.
  returned: failure, when the API server could not be reached
  type: str
  sample: "14:03:12 UTC"
unchanged:
  description:
    - Whether the check was skipped because the DaemonSet already runs the definition's pod template (O(skip_unchanged)).
    - When true, RV(rows), RV(nodes), RV(footprint), RV(footprint_explained) and RV(shortfalls) are empty, RV(existing)
      is null and RV(eligible_nodes) is the DaemonSet's C(desiredNumberScheduled).
  returned: success, or failure after the check ran
  type: bool
  sample: false
fits:
  description: Whether the DaemonSet fits every quota and limit range that applies to it.
  returned: success, or failure after the check ran
  type: bool
  sample: false
rows:
  description:
    - One row per quota and resource the pods count against, and one per LimitRange constraint.
    - Quantities are strings in the unit a reader expects (cpu in millicores, memory in the unit the definition used
      or C(Mi)).
    - For a LimitRange row, RV(rows[].needed) is the pod's value, RV(rows[].available) the bound, and the row also
      has C(constraint) (for example V(Container max)) and C(scope) (the container or the pod).
  returned: success, or failure after the check ran
  type: list
  elements: dict
  contains:
    quota:
      description: The name of the ResourceQuota, ClusterResourceQuota or LimitRange.
      type: str
    kind:
      description: V(ResourceQuota), V(ClusterResourceQuota) or V(LimitRange).
      type: str
    resource:
      description: The resource as the quota names it, for example V(limits.memory) or V(pods).
      type: str
    needed:
      description: What the DaemonSet needs beyond what its current version already holds.
      type: str
    available:
      description: Hard minus used.
      type: str
    shortfall:
      description: How much is missing; V(0) when it fits.
      type: str
    fits:
      description: Whether this row fits.
      type: bool
  sample:
    - quota: compute
      kind: ResourceQuota
      resource: limits.memory
      needed: 2000Mi
      available: 1500Mi
      shortfall: 500Mi
      fits: false
eligible_nodes:
  description: How many nodes the DaemonSet puts a pod on.
  returned: success, or failure after the check ran
  type: int
  sample: 20
nodes:
  description: All nodes, the eligible ones, and how many were excluded for each reason.
  returned: success, or failure after the check ran
  type: dict
  sample:
    total: 21
    eligible: 20
    excluded:
      with untolerated taint dedicated=gpu:NoSchedule: 1
footprint:
  description: What one pod counts against a quota, per resource.
  returned: success, or failure after the check ran
  type: dict
  sample: {"cpu": "250m", "limits.cpu": "1000m", "limits.memory": "100Mi", "memory": "50Mi", "pods": "1"}
footprint_explained:
  description: How each footprint figure was reached.
  returned: success, or failure after the check ran
  type: dict
  sample: {"limits.memory": "20Mi x 5 containers"}
existing:
  description: The live pods of the current DaemonSet of the same name, whose usage is subtracted; null when there is none.
  returned: success, or failure after the check ran
  type: dict
  sample: {"pods": 20}
shortfalls:
  description: One sentence per quota resource or LimitRange constraint that does not fit.
  returned: success, or failure after the check ran
  type: list
  elements: str
  sample:
    - '20Mi x 5 containers x 20 nodes = 2000Mi limits.memory needed, 1500Mi available in ResourceQuota "compute"
      (namespace k8s-image-puller): short by 500Mi'
messages:
  description: The summary, the arithmetic of every row in words, and the notes.
  returned: success, or failure after the check ran
  type: list
  elements: str
notes:
  description:
    - "What was skipped or assumed, for example V(ClusterResourceQuota API not present: skipped), quotas whose scopes do
      not match the pods, or a quota whose used figures are not computed yet (counted as 0)."
  returned: success, or failure after the check ran
  type: list
  elements: str
shapes:
  description:
    - What O(definition) (first) and each of O(compare_definitions) need, by the same rule as RV(footprint).
    - C(mode) is V(init) for a pod template of the init shape of the role (its C(image-puller.kip/mode) annotation),
      else V(daemon). C(pod) is one pod's footprint, C(total) the footprint on the C(nodes) eligible nodes.
    - With RV(unchanged=true), on the nodes the DaemonSet runs on and without the namespace's LimitRanges.
  returned: success, or failure after the check ran
  type: list
  elements: dict
  sample:
    - {"mode": "init", "nodes": 4, "pod": {"limits.memory": "20Mi"}, "total": {"limits.memory": "80Mi"},
       "pod_explained": {"limits.memory": "20Mi (init container \"copy-sleep\")"}}
    - {"mode": "daemon", "nodes": 4, "pod": {"limits.memory": "100Mi"}, "total": {"limits.memory": "400Mi"},
       "pod_explained": {"limits.memory": "20Mi x 5 containers"}}
shape_lines:
  description: RV(shapes) for a person, one line per shape.
  returned: success, or failure after the check ran
  type: list
  elements: str
  sample:
    - image_puller_mode init needs limits.memory 20Mi per pod; on 4 eligible nodes limits.memory 80Mi
    - image_puller_mode daemon would need limits.memory 100Mi per pod; on 4 eligible nodes limits.memory 400Mi
summary:
  description: One line with the eligible nodes and the footprint of one pod.
  returned: success, or failure after the check ran
  type: str
daemonset:
  description: The name of the DaemonSet.
  returned: success, or failure after the check ran
  type: str
namespace:
  description: The namespace of the DaemonSet.
  returned: success, or failure after the check ran
  type: str
"""

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import run_module
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import run


def main() -> None:
    run_module({
        "definition": {"type": "dict", "required": True},
        "namespace": {"type": "str"},
        "fail_on_insufficient": {"type": "bool", "default": True},
        "skip_unchanged": {"type": "bool", "default": False},
        "compare_definitions": {"type": "list", "elements": "dict", "default": []},
    }, run)


if __name__ == "__main__":
    main()
