# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""What image_puller_daemonset does before the DaemonSet, when asked: a whole deploy in one module run.

In order, so that bad input or a shortfall changes nothing:
  1. read the namespace (namespace_definition); missing and create_namespace false: fail;
  2. the quota pre-flight (quota_check), skipped cheaply when the pod template does not change;
  3. apply the namespace, then each of objects (ConfigMap, ServiceAccount, RBAC, NetworkPolicy, ...),
     then the pull_secrets (masked in the result and diff; a foreign Secret of the same name is
     refused before step 2, and the module's Secrets no longer given are deleted; secret_objects.py);
  4. restart the pods of the existing DaemonSet (restart).
runner.py then applies the DaemonSet and waits, as without these options.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import objects as objs
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import secret_objects
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.api import FIELD_MANAGER
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.apply import prepare_definition
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.preflight import preflight_all
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quota import failure_message
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import Retrier


@dataclasses.dataclass
class Prepared:
    """What happened before the DaemonSet: one entry per object, the quota check, the restart."""

    outcomes: list = dataclasses.field(default_factory=list)
    quota: dict[str, Any] | None = None
    restarted: bool = False
    # check mode and the namespace does not exist yet: nothing in it can be dry-run
    namespace_pending: bool = False

    @property
    def changed(self) -> bool:
        return self.restarted or any(outcome.changed for outcome in self.outcomes)

    def result(self) -> dict[str, Any]:
        return {"objects": [outcome.report() for outcome in self.outcomes], "quota": self.quota, "restarted": self.restarted}

    def diffs(self) -> list[dict[str, Any]]:
        return [outcome.diff() for outcome in self.outcomes]


def wanted(params: dict[str, Any]) -> bool:
    """Whether any of the deploy options is set (without them the module only handles the DaemonSet)."""
    return bool(params.get("namespace_definition") or params.get("objects") or params.get("quota_check") or params.get("restart")
                or params.get("pull_secrets") is not None)


def check_params(params: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    """The objects to apply, checked; errors before anything is read or written."""
    definition = params.get("namespace_definition")
    if definition:
        name = (definition.get("metadata") or {}).get("name")
        if definition.get("kind", "Namespace") != "Namespace" or name != namespace:
            raise ImagePullerError(f"namespace_definition must be the Namespace {namespace!r} of the DaemonSet, "
                                   f"got {definition.get('kind', 'Namespace')} {name!r}")
    return objs.check_objects(params.get("objects") or [], namespace)


def instance_name(params: dict[str, Any], definitions: list[dict[str, Any]]) -> str:
    """The name the pull Secrets are labelled with: the instance's (owner_labels' app.kubernetes.io/instance, the
    name the role derives the DaemonSets from, one per architecture or one), else the DaemonSet's."""
    instance = (params.get("owner_labels") or {}).get("app.kubernetes.io/instance")
    return instance or definitions[0]["metadata"]["name"]


def prepare(params: dict[str, Any], client: Any, retrier: Retrier, definitions: list[dict[str, Any]], *, check_mode: bool) -> Prepared:
    """Steps 1 to 4 of this module's docstring for the DaemonSets of the deploy (one, or one per architecture);
    raises ImagePullerError (with what was done) on the first failure."""
    namespace = definitions[0]["metadata"]["namespace"]
    extra = check_params(params, namespace)
    secrets = None
    if params.get("pull_secrets") is not None:
        secrets = secret_objects.check_secrets(params["pull_secrets"], namespace, instance_name(params, definitions))
    api = objs.ObjectApi(client, field_manager=FIELD_MANAGER, retrier=retrier)
    prepared = Prepared()
    namespace_definition = params.get("namespace_definition")
    live_namespace = None
    if namespace_definition:
        live_namespace = objs.read_namespace(api, namespace_definition)
        if live_namespace is None and not params.get("create_namespace"):
            raise ImagePullerError(f"namespace {namespace!r} does not exist and create_namespace is false: "
                                   "create it first, or set create_namespace to true")
        prepared.namespace_pending = check_mode and live_namespace is None

    live_secrets = {}
    if secrets and not prepared.namespace_pending:
        live_secrets = secret_objects.refuse_foreign(api, secrets)

    if params.get("quota_check"):
        # a re-run that changes no pod template reads no node and no pod
        compare = [prepare_definition(item, namespace) for item in params.get("compare_definitions") or []]
        prepared.quota = preflight_all(api, definitions, skip_unchanged=True, compare=compare)
        if not prepared.quota["fits"]:
            raise ImagePullerError(failure_message(prepared.quota), **prepared.result())

    try:
        if namespace_definition:
            prepared.outcomes.append(objs.apply_namespace(api, namespace_definition, live_namespace))
        objs.apply_objects(api, extra, namespace=namespace, namespace_pending=prepared.namespace_pending, outcomes=prepared.outcomes)
        if secrets is not None:
            secret_objects.apply_secrets(api, secrets, live_secrets, namespace=namespace, daemonset_name=instance_name(params, definitions),
                                         namespace_pending=prepared.namespace_pending, outcomes=prepared.outcomes)
        if params.get("restart") and not prepared.namespace_pending:
            now = datetime.datetime.now(tz=datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            restarted = [objs.restart_daemonset(api, definition, now) for definition in definitions]
            prepared.restarted = any(restarted)
    except ImagePullerError as exc:
        exc.result = {**prepared.result(), "changed": prepared.changed, **exc.result}
        raise
    return prepared
