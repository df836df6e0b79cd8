#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: image_puller_upstream
short_description: Find an upstream kubernetes-image-puller install in a namespace, and take it over
version_added: 1.0.0
author:
  - kip.image_puller developers (@kip-image-puller)
description:
  - Finds the parts of an install of the upstream kubernetes-image-puller (che-incubator) in O(namespace) - its
    controller Deployment (a container that sets C(DEPLOYMENT_NAME)), the ConfigMap it reads (or one holding the
    upstream C(IMAGES) and C(DAEMONSET_NAME) keys that this collection did not make), the DaemonSet with the upstream
    selector C(test=daemonset-test,app.kubernetes.io/name=image-puller), and upstream puller pods no DaemonSet owns.
  - The role M(kip.image_puller.image_puller) runs O(step=find) before any change and stops when it finds an
    install, unless C(image_puller_adopt) is true; then it runs O(step=stop_controller), rolls out its own DaemonSet,
    and runs O(step=clean_up).
  - O(step=stop_controller) deletes each upstream DaemonSet with propagation C(Orphan), so its pods keep running, and
    waits until it is gone; then deletes the controller Deployment and waits until its pods are gone. The DaemonSet
    goes first because the controller deletes it with its pods when it is stopped, and because the Deployment owns it.
  - O(step=clean_up) deletes the upstream pods no DaemonSet owns, and the ServiceAccounts named in
    O(service_accounts) with the RoleBindings that bind only them and the Roles only those bindings use. The upstream
    ConfigMaps stay, annotated C(image-puller.kip/adopted-by=kip.image_puller) - the role goes on reading its
    settings from it while C(image_puller_adopt) is true, so that a later run with the same variables changes nothing.
  - Objects labelled C(app.kubernetes.io/managed-by=kip.image_puller) are never deleted.
extends_documentation_fragment: [kubernetes.core.k8s_auth_options, ansible.builtin.action_common_attributes,
  kip.image_puller._options, kip.image_puller._options.wait_timeout]
options:
  namespace:
    description: The namespace to look in.
    type: str
    required: true
  step:
    description:
      - V(find) only reads; V(stop_controller) and V(clean_up) delete, as described above. Nothing is deleted when
        nothing is left to take over (see RV(pending)).
    type: str
    choices: [find, stop_controller, clean_up]
    default: find
  service_accounts:
    description:
      - For O(step=clean_up), the controller's ServiceAccounts, as RV(service_accounts) of the O(step=find) run before
        the controller was deleted.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Every delete is sent as a server-side dry run (C(dryRun=All)) and nothing is waited for.
  diff_mode:
    support: none
notes:
  - The connection user needs C(list) on Deployments, DaemonSets, ConfigMaps, Pods and RoleBindings in the namespace,
    C(get) on the namespace, C(delete) on what it deletes and C(patch) on ConfigMaps.
seealso:
  - module: kip.image_puller.image_puller_daemonset
"""

EXAMPLES = r"""
- name: Look for an upstream install
  kip.image_puller.image_puller_upstream:
    namespace: k8s-image-puller
  register: upstream

- name: Stop when there is one
  ansible.builtin.fail:
    msg: "{{ upstream.message }}"
  when: upstream.installed
"""

RETURN = r"""
installed:
  description: Whether any part of an upstream install was found.
  returned: always
  type: bool
pending:
  description:
    - Whether anything is left to take over - a controller Deployment, an upstream DaemonSet, upstream pods no
      DaemonSet owns, or an upstream ConfigMap not yet annotated as taken over.
  returned: always
  type: bool
found:
  description: The upstream objects found, as C(Kind/name) (Deployments, ConfigMaps, DaemonSets).
  returned: always
  type: list
  elements: str
  sample: [Deployment/kubernetes-image-puller, ConfigMap/k8s-image-puller, DaemonSet/kubernetes-image-puller]
orphaned_pods:
  description: Upstream puller pods that no DaemonSet owns (left running by O(step=stop_controller)), as C(Pod/name).
  returned: always
  type: list
  elements: str
service_accounts:
  description: The ServiceAccounts the controller Deployments run as (C(default) left out).
  returned: always
  type: list
  elements: str
  sample: [k8s-image-puller]
configmap:
  description: The name of the upstream ConfigMap whose settings are to be taken over, or null.
  returned: always
  type: str
config:
  description:
    - That ConfigMap as a manifest with its C(data) only, without C(NAMESPACE) (the install is taken over where it
      is), for C(image_puller_config); null when there is none.
  returned: always
  type: dict
message:
  description: What was found and what to do about it; null when nothing was found.
  returned: always
  type: str
annotated:
  description: The ConfigMaps this run annotated as taken over (in check mode, would annotate), as C(Kind/name).
  returned: always
  type: list
  elements: str
deleted:
  description: What this run deleted (in check mode, would delete), as C(Kind/name).
  returned: always
  type: list
  elements: str
"""

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.adopt import run
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.client import run_module


def main() -> None:
    run_module({
        "namespace": {"type": "str", "required": True},
        "step": {"type": "str", "choices": ["find", "stop_controller", "clean_up"], "default": "find"},
        "service_accounts": {"type": "list", "elements": "str", "default": []},
    }, run)


if __name__ == "__main__":
    main()
