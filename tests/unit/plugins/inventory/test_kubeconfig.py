# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pathlib

import pytest

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import inventory_loader

from ansible_collections.kip.image_puller.plugins.inventory import kubeconfig as kubeconfig_plugin
from ansible_collections.kip.image_puller.plugins.inventory.kubeconfig import default_kubeconfigs, read_contexts, selected

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
PROD = str(FIXTURES / "prod.yaml")
STAGING = str(FIXTURES / "staging.yaml")
NAME = "kip.image_puller.kubeconfig"


def new_plugin():
    """The plugin as Ansible's plugin loader sets it up: its options from DOCUMENTATION and the constructed fragment."""
    inventory_loader._load_config_defs(NAME, kubeconfig_plugin, kubeconfig_plugin.__file__)  # pylint: disable=protected-access
    plugin = kubeconfig_plugin.InventoryModule()
    plugin._load_name = NAME  # pylint: disable=protected-access
    return plugin


def inventory(tmp_path, text, name="clusters.kubeconfig.yml"):
    source = tmp_path / name
    source.write_text("plugin: kip.image_puller.kubeconfig\n" + text, encoding="utf-8")
    plugin = new_plugin()
    data = InventoryData()
    plugin.parse(data, DataLoader(), str(source), cache=False)
    return data


def hostvars(data, name):
    return data.get_host(name).get_vars()


def members(data, group):
    return sorted(h.name for h in data.groups[group].get_hosts())


def test_every_context_of_every_file_is_a_host_first_file_wins(tmp_path):
    data = inventory(tmp_path, f"kubeconfigs: [{PROD}, {STAGING}]\n")
    assert sorted(data.hosts) == ["kind-local", "prod-eu-1", "prod-eu-admin", "prod-us-1", "stage-eu-1"]
    assert hostvars(data, "prod-us-1")["image_puller_kubeconfig"] == PROD


def test_host_variables_are_the_role_connection_and_no_credential(tmp_path):
    data = inventory(tmp_path, f"kubeconfigs: [{PROD}]\n")
    got = hostvars(data, "prod-eu-1")
    assert got["ansible_connection"] == "local"
    assert (got["image_puller_kubeconfig"], got["image_puller_context"]) == (PROD, "prod-eu-1")
    assert (got["kubeconfig_cluster"], got["kubeconfig_server"]) == ("eu", "https://eu.example.invalid:6443")
    assert (got["kubeconfig_user"], got["kubeconfig_namespace"]) == ("deployer", "k8s-image-puller")
    assert "fixture-token" not in repr({h: hostvars(data, h) for h in data.hosts})


@pytest.mark.parametrize(
    ("options", "hosts"),
    [
        pytest.param("contexts: ['prod-*']\n", ["prod-eu-1", "prod-eu-admin", "prod-us-1"], id="include pattern"),
        pytest.param("exclude_contexts: ['*-admin', 'kind-*']\n", ["prod-eu-1", "prod-us-1", "stage-eu-1"], id="exclude patterns"),
        pytest.param("contexts: ['prod-*']\nexclude_contexts: ['prod-us-*']\n", ["prod-eu-1", "prod-eu-admin"],
                     id="exclude wins over include"),
        pytest.param("contexts: ['nothing-*']\n", [], id="no match, no host"),
    ],
)
def test_filters(tmp_path, options, hosts):
    data = inventory(tmp_path, f"kubeconfigs: [{PROD}, {STAGING}]\n" + options)
    assert sorted(data.hosts) == hosts


def test_groups_by_cluster_with_safe_names(tmp_path):
    data = inventory(tmp_path, f"kubeconfigs: [{PROD}, {STAGING}]\n")
    assert members(data, "cluster_eu") == ["prod-eu-1", "prod-eu-admin"]
    assert members(data, "cluster_stage_eu") == ["stage-eu-1"]
    assert "cluster_us" in data.groups


def test_groups_by_cluster_can_be_turned_off(tmp_path):
    data = inventory(tmp_path, f"kubeconfigs: [{PROD}]\ngroup_by_cluster: false\n")
    assert not [g for g in data.groups if g.startswith("cluster_")]


def test_groups_by_naming_pattern_with_constructed_options(tmp_path):
    data = inventory(tmp_path, f"kubeconfigs: [{PROD}, {STAGING}]\n" + r"""
keyed_groups:
  - key: image_puller_context | regex_replace('^([a-z]+)-.*$', '\\1')
    separator: ''
groups:
  canary: image_puller_context.endswith('-1')
""")
    assert members(data, "prod") == ["prod-eu-1", "prod-eu-admin", "prod-us-1"]
    assert members(data, "stage") == ["stage-eu-1"]
    assert members(data, "canary") == ["prod-eu-1", "prod-us-1", "stage-eu-1"]


def test_relative_paths_are_relative_to_the_source(tmp_path):
    (tmp_path / "kube").mkdir()
    (tmp_path / "kube" / "a.yaml").write_text(pathlib.Path(PROD).read_text(encoding="utf-8"), encoding="utf-8")
    data = inventory(tmp_path, "kubeconfigs: [kube/a.yaml]\ncontexts: [prod-us-1]\n")
    assert hostvars(data, "prod-us-1")["image_puller_kubeconfig"] == str(tmp_path / "kube" / "a.yaml")


def test_kubeconfig_environment_is_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", f"{STAGING}:{PROD}")
    data = inventory(tmp_path, "")
    assert hostvars(data, "prod-us-1")["image_puller_kubeconfig"] == STAGING


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        pytest.param({"KUBECONFIG": "/a:/b"}, ["/a", "/b"], id="KUBECONFIG, in order"),
        pytest.param({"KUBECONFIG": ":/a:"}, ["/a"], id="empty entries skipped"),
        pytest.param({}, [str(pathlib.Path("~/.kube/config").expanduser())], id="kubectl's default"),
    ],
)
def test_default_kubeconfigs(environ, expected):
    assert default_kubeconfigs(environ) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("a: [", "is not YAML", id="not YAML"),
        pytest.param("[1, 2]", "is not a kubeconfig file", id="not a mapping"),
        pytest.param("contexts: {a: 1}", "is not a kubeconfig file", id="contexts not a list"),
        pytest.param("contexts: [{context: {}}]", "needs a name", id="context without a name"),
    ],
)
def test_read_contexts_refuses_what_is_not_a_kubeconfig(text, match):
    with pytest.raises(ValueError, match=match):
        read_contexts("k.yaml", text)


def test_read_contexts_of_an_empty_file_and_an_unknown_cluster():
    assert read_contexts("k.yaml", "") == []
    assert read_contexts("k.yaml", "contexts: [{name: a, context: {cluster: gone}}]") == [
        ("a", {"kubeconfig_cluster": "gone", "kubeconfig_server": None, "kubeconfig_user": None, "kubeconfig_namespace": None})]


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(AnsibleParserError, match=r"cannot read kubeconfig file .*/nope\.yaml .*fix the path in 'kubeconfigs'"):
        inventory(tmp_path, f"kubeconfigs: [{tmp_path}/nope.yaml]\n")


def test_a_broken_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken.yaml").write_text("contexts: 3\n", encoding="utf-8")
    with pytest.raises(AnsibleParserError, match="broken.yaml is not a kubeconfig file"):
        inventory(tmp_path, "kubeconfigs: [broken.yaml]\n")


@pytest.mark.parametrize(
    ("name", "accepted"),
    [("clusters.kubeconfig.yml", True), ("lab.kubeconfig.yaml", True), ("kubeconfig.yml", True),
     ("clusters.yml", False), ("kubeconfig.json", False)],
)
def test_verify_file_by_name(tmp_path, name, accepted):
    (tmp_path / name).write_text("plugin: kip.image_puller.kubeconfig\n", encoding="utf-8")
    assert new_plugin().verify_file(str(tmp_path / name)) is accepted


@pytest.mark.parametrize(
    ("name", "include", "exclude", "expected"),
    [("prod-1", ["*"], [], True), ("prod-1", ["stage-*"], [], False), ("prod-1", ["*"], ["prod-*"], False),
     ("Prod-1", ["prod-*"], [], False)],
)
def test_selected_is_case_sensitive_fnmatch(name, include, exclude, expected):
    assert selected(name, include, exclude) is expected
