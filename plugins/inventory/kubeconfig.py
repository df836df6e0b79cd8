# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: kubeconfig
version_added: 1.0.0
author:
  - kip.image_puller developers (@kip-image-puller)
short_description: The contexts of kubeconfig files as inventory hosts, one per cluster
description:
  - Lists the contexts of one or more kubeconfig files as hosts, so that an existing kubeconfig is the inventory
    of the multi-cluster playbooks C(kip.image_puller.deploy), C(kip.image_puller.remove) and
    C(kip.image_puller.status).
  - Each host is named after its context and gets C(ansible_connection=local) and the connection variables of the
    role C(kip.image_puller.image_puller) (C(image_puller_kubeconfig), C(image_puller_context)), and, for groups
    and filters, C(kubeconfig_cluster), C(kubeconfig_server), C(kubeconfig_user) and C(kubeconfig_namespace).
  - Reads only the names, the server and the namespace of each context; credentials stay in the kubeconfig file and
    never become host variables.
  - Hosts are grouped by cluster (O(group_by_cluster)) and, with the options of the C(constructed) plugin, by any
    expression, for example a naming pattern of the contexts.
  - The source is a YAML file whose name ends in C(kubeconfig.yml) or C(kubeconfig.yaml), with
    C(plugin=kip.image_puller.kubeconfig).
extends_documentation_fragment:
  - constructed
options:
  plugin:
    description: The name of this plugin; the inventory source is read by this plugin only when it says so.
    type: str
    required: true
    choices: [kip.image_puller.kubeconfig]
  kubeconfigs:
    description:
      - The kubeconfig files whose contexts become hosts, in order; a context found in more than one file is taken
        from the first (as C(kubectl) merges C(KUBECONFIG)) and a warning names the others.
      - Relative paths are relative to the inventory source.
      - Default, the files in E(KUBECONFIG) (separated by C(:)), else C(~/.kube/config).
    type: list
    elements: path
  contexts:
    description:
      - Shell-style patterns (C(fnmatch)); only contexts matching at least one become hosts.
    type: list
    elements: str
    default: ['*']
  exclude_contexts:
    description: Shell-style patterns; contexts matching any of them are left out, also when O(contexts) matches them.
    type: list
    elements: str
    default: []
  group_by_cluster:
    description:
      - Put each host in a group named C(cluster_) and the name of its context's cluster (characters that cannot be
        in a group name replaced by C(_)), so that contexts of one cluster (several users or namespaces) can be
        told apart.
    type: bool
    default: true
"""

EXAMPLES = r"""
# clusters.kubeconfig.yml: every context of two kubeconfig files, except the kind ones
plugin: kip.image_puller.kubeconfig
kubeconfigs:
  - ~/.kube/prod.yaml
  - ~/.kube/staging.yaml
exclude_contexts: ['kind-*']

---
# clusters.kubeconfig.yml: groups by a naming pattern of the contexts (prod-eu-1, prod-us-2, stage-eu-1, ...),
# so that group_vars/prod.yml and group_vars/eu.yml can hold an image set each
plugin: kip.image_puller.kubeconfig
kubeconfigs: [~/.kube/config]
contexts: ['prod-*', 'stage-*']
keyed_groups:
  - key: image_puller_context | regex_replace('^([a-z]+)-.*$', '\\1')
    separator: ''
  - key: image_puller_context | regex_replace('^[a-z]+-([a-z]+)-.*$', '\\1')
    separator: ''
groups:
  # an expression per group
  canary: image_puller_context.endswith('-1')

# Then: ansible-playbook -i clusters.kubeconfig.yml kip.image_puller.deploy -e @images.yml --limit prod
"""

import fnmatch
import os
import re

from ansible.errors import AnsibleParserError
from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable

try:
    import yaml
except ImportError as exc:  # pragma: no cover - PyYAML is a dependency of ansible-core
    raise AnsibleParserError("the kubeconfig inventory plugin needs PyYAML") from exc

SUFFIXES = ("kubeconfig.yml", "kubeconfig.yaml")
GROUP_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def default_kubeconfigs(environ=None):
    """The kubeconfig files kubectl would read: those of KUBECONFIG, else ~/.kube/config."""
    environ = os.environ if environ is None else environ
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return listed or [os.path.expanduser("~/.kube/config")]


def cluster_group(cluster):
    return "cluster_" + GROUP_UNSAFE.sub("_", cluster)


def selected(name, include, exclude):
    """Whether a context name matches an include pattern and no exclude pattern."""
    return any(fnmatch.fnmatchcase(name, p) for p in include) and not any(fnmatch.fnmatchcase(name, p) for p in exclude)


def read_contexts(path, text):
    """(context, variables) per context of one kubeconfig file's text; raises ValueError naming what is wrong."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, dict) or not isinstance(data.get("contexts") or [], list):
        raise ValueError(f"{path} is not a kubeconfig file (expected a mapping with a 'contexts' list)")
    clusters = {}
    for entry in data.get("clusters") or []:
        if isinstance(entry, dict) and entry.get("name"):
            clusters[str(entry["name"])] = (entry.get("cluster") or {}).get("server")
    found = []
    for entry in data.get("contexts") or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            raise ValueError(f"{path}: every entry of 'contexts' needs a name, got {type(entry).__name__}")
        context = entry.get("context") or {}
        cluster = context.get("cluster")
        found.append((str(entry["name"]), {
            "kubeconfig_cluster": cluster,
            "kubeconfig_server": clusters.get(str(cluster)) if cluster is not None else None,
            "kubeconfig_user": context.get("user"),
            "kubeconfig_namespace": context.get("namespace"),
        }))
    return found


class InventoryModule(BaseInventoryPlugin, Constructable):
    """Contexts of kubeconfig files as hosts."""

    NAME = "kip.image_puller.kubeconfig"

    def verify_file(self, path):
        return super().verify_file(path) and path.endswith(SUFFIXES)

    def parse(self, inventory, loader, path, cache=False):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        base = os.path.dirname(path)
        files = self.get_option("kubeconfigs") or default_kubeconfigs()
        include = self.get_option("contexts")
        exclude = self.get_option("exclude_contexts")
        strict = self.get_option("strict")
        seen = {}
        for name in files:
            kubeconfig = os.path.abspath(os.path.join(base, os.path.expanduser(name)))
            try:
                with open(kubeconfig, encoding="utf-8") as handle:
                    contexts = read_contexts(kubeconfig, handle.read())
            except OSError as exc:
                raise AnsibleParserError(
                    f"cannot read kubeconfig file {kubeconfig} ({to_native(exc.strerror)}); "
                    "fix the path in 'kubeconfigs' or remove it") from exc
            except ValueError as exc:
                raise AnsibleParserError(to_native(exc)) from exc
            for context, facts in contexts:
                if not selected(context, include, exclude):
                    continue
                if context in seen:
                    self.display.warning(f"context {context!r} of {kubeconfig} is also in {seen[context]}; "
                                         f"the host {context!r} uses the first one")
                    continue
                seen[context] = kubeconfig
                self._add(context, kubeconfig, facts, strict)

    def _add(self, context, kubeconfig, facts, strict):
        host = self.inventory.add_host(context)
        variables = {
            "ansible_connection": "local",
            "image_puller_kubeconfig": kubeconfig,
            "image_puller_context": context,
            **facts,
        }
        for key, value in variables.items():
            self.inventory.set_variable(host, key, value)
        if self.get_option("group_by_cluster") and facts["kubeconfig_cluster"]:
            group = self.inventory.add_group(cluster_group(str(facts["kubeconfig_cluster"])))
            self.inventory.add_child(group, host)
        self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
        self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
        self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)
