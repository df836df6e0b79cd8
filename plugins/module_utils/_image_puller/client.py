# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The connection to the cluster, as kubernetes.core makes it.

Reusing kubernetes.core's argument spec and client gives the modules of this
collection the same connection options and the same K8S_AUTH_* environment
variables (which AWX's Kubernetes credential injects) as kubernetes.core.k8s,
so one module_defaults group serves both.
"""

from __future__ import annotations

import copy
import gc
import json
import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.basic import AnsibleModule, _load_params, missing_required_lib

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.errors import ApiError, ImagePullerError
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.retry import TRANSIENT_STATUSES, Retrier, Starting, is_transient

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
except ImportError:
    HAS_KUBERNETES_CORE = False
    AUTH_ARG_SPEC = {}
else:
    HAS_KUBERNETES_CORE = True

try:
    from kubernetes.dynamic.exceptions import ResourceNotFoundError
except ImportError:  # the client is checked for by AnsibleK8SModule
    class ResourceNotFoundError(Exception):  # type: ignore[no-redef]
        """Stand-in when the kubernetes client is missing."""

# /readyz of a server that does not let this user ask, or has no such path: its discovery is believed as it is.
READYZ_UNKNOWN = frozenset({401, 403, 404})
READYZ_TIMEOUT = 10

KUBERNETES_CORE_MISSING = "the kubernetes.core collection (>=6.0.0,<7.0.0)"


def auth_argument_spec() -> dict[str, Any]:
    """kubernetes.core's connection options, to merge into a module's argument spec."""
    return copy.deepcopy(AUTH_ARG_SPEC)


def new_module(*, argument_spec: dict[str, Any], **kwargs: Any) -> Any:
    """An AnsibleK8SModule (the AnsibleModule proxy of kubernetes.core).

    argument_spec should already hold auth_argument_spec(). Without
    kubernetes.core this fails the task with a message that names it, rather
    than with "Unsupported parameters" for the connection options.
    """
    if not HAS_KUBERNETES_CORE:
        spec = dict(argument_spec)
        for name in _load_params():
            # accept (and hide) whatever was passed, so the real cause is what the user reads
            spec.setdefault(name, {"type": "raw", "no_log": True})
        module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
        module.fail_json(msg=missing_required_lib(KUBERNETES_CORE_MISSING))
    return AnsibleK8SModule(argument_spec=argument_spec, **kwargs)


# Objects allocated between two collections of the youngest generation during a module run (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000

# The time limit every module takes (documented in the _options.wait_timeout doc fragment).
WAIT_TIMEOUT_OPTION = {"type": "int", "default": 300}


def run_module(options: dict[str, Any], run: Callable[[Any], dict[str, Any]], **module_kwargs: Any) -> None:
    """A module's main(): its options with the connection options and wait_timeout, run(module) to exit_json.

    An ImagePullerError becomes fail_json with its message and the partial result it carries.
    """
    # Fewer garbage collections while big answers are parsed: a thousand Node objects (4 MB of JSON) parse in a third of
    # the time. Cycles are still collected, after every GC_YOUNG_THRESHOLD new objects instead of every 700.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    argument_spec = auth_argument_spec()
    argument_spec.update(options, wait_timeout=WAIT_TIMEOUT_OPTION)
    module = new_module(argument_spec=argument_spec, supports_check_mode=True, **module_kwargs)
    try:
        result = run(module)
    except ImagePullerError as exc:
        leave_uncollected()
        module.fail_json(msg=exc.msg, **exc.result)
    leave_uncollected()
    module.exit_json(**result)


def leave_uncollected() -> None:
    """The run is over: spare the interpreter's exit a garbage collection over every object still alive.

    Python collects garbage while it shuts down; with the Kubernetes client loaded and a thousand nodes read that
    took 0.1 to 0.3 s after the result was written, between the last pod turning Ready and the task's end. Frozen
    objects are left to the process's end (exit_json and fail_json still write the result and run atexit).
    """
    gc.freeze()


def connect_within(module: Any) -> tuple[Any, Retrier]:
    """The client, and the retrier that rides out the API server going away until the module's wait_timeout."""
    timeout = module.params["wait_timeout"]
    if timeout < 0:
        raise ImagePullerError(f"wait_timeout must be 0 or more seconds, got {timeout}")
    retrier = Retrier(deadline=time.monotonic() + timeout)
    return retrier.call("could not connect to the API server", lambda: connect(module)), retrier


def connect(module: Any) -> Any:
    """kubernetes.core's K8SClient for the module's connection options or K8S_AUTH_* variables.

    In check mode the client sends every write with dryRun=All. Making it asks
    the API server for its version; an unreachable server raises as it is, for
    the caller's retry.Retrier to wait out.
    """
    try:
        return get_api_client(module=module)
    except CoreException as exc:
        raise ImagePullerError(str(exc)) from exc
    except Exception as exc:  # pylint: disable=broad-exception-caught
        if is_transient(exc):
            raise
        # a broken kubeconfig raises whatever the kubernetes client happens to raise
        raise ImagePullerError(f"could not create the Kubernetes API client: {exc}") from exc


def api_error(exc: Exception, action: str, *, subject: str | None = None, **result: Any) -> ApiError:
    """The one translation of a kubernetes client exception: "[<subject>: ]could not <action>: <the server's message>".

    The ApiError carries the HTTP status and the Status reason for callers to
    decide on; the caller raises it ``from exc``.
    """
    text = f"could not {action}: {api_error_message(exc)}"
    return ApiError(f"{subject}: {text}" if subject else text, status=api_status(exc), reason=_status_reason(exc), **result)


def _status_reason(exc: Exception) -> str | None:
    """The machine-readable reason of a Status body (NotFound, Forbidden, AlreadyExists, ...)."""
    status = _status_body(exc)
    reason = status.get("reason") if status else None
    return str(reason) if reason else None


def _status_body(exc: Exception) -> dict[str, Any] | None:
    body = getattr(exc, "body", None)
    if not body:
        return None
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    try:
        status = json.loads(body)
    except (TypeError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def api_error_message(exc: Exception) -> str:
    """The API server's own message from an ApiException (or DynamicApiError), else str(exc)."""
    status = _status_body(exc)
    if status and status.get("message"):
        return str(status["message"])
    reason = getattr(exc, "reason", None)
    status_code = getattr(exc, "status", None)
    if reason or status_code:
        return f"{status_code} {reason}".strip()
    return str(exc)


def api_status(exc: Exception) -> int | None:
    """The HTTP status of an API error, or None when it is not one."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def discover(client: Any, kind: str, api_version: str) -> Any | None:
    """The client's API resource for kind in api_version, or None when the cluster does not serve it.

    Right after a start the API server answers before it has registered all its
    API groups, and its discovery lacks, say, apps/v1 for a few seconds. A miss
    while /readyz says not ready raises retry.Starting, which the caller's
    Retrier waits out like an outage; a miss on a ready server is believed.
    """
    if "/" in api_version and not _group_version_cached(client, api_version) and not _serves(client, api_version):
        return _not_served(client, kind, api_version)
    try:
        return client.resource(kind, api_version)
    except ResourceNotFoundError:
        return _not_served(client, kind, api_version)


def _not_served(client: Any, kind: str, api_version: str) -> None:
    if server_ready(client) is False:
        raise Starting(f"the API server is starting and lists no {kind} ({api_version}) yet")
    return None


def _group_version_cached(client: Any, api_version: str) -> bool:
    """Whether kubernetes.core's discovery cache knows the group version (an API group, not the core one)."""
    group, version = api_version.split("/", 1)
    groups = client.client.resources.parse_api_groups(request_resources=False)
    return version in ((groups.get("apis") or {}).get(group) or {})


def _serves(client: Any, api_version: str) -> bool:
    """Whether the API server serves a group version its cached discovery lacks, asked at /apis/<group>/<version>.

    A lookup that misses the cache makes kubernetes.core throw the whole cache away and read it again (the server's
    version, its groups, then each group's resources as they are used): a dozen requests in a pre-flight on a cluster
    without, say, OpenShift's quota API. One request says the same. A refusal to answer is left to the lookup.
    """
    try:
        client.client.request("get", f"/apis/{api_version}", serialize=False)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        if api_status(exc) == 404:
            return False
        if api_status(exc) in (401, 403):
            return True
        raise
    return True


def server_ready(client: Any) -> bool | None:
    """What the API server's /readyz says: True, False, or None when this user may not ask.

    A refused or reset connection raises, for the caller's Retrier.
    """
    try:
        client.client.request("get", "/readyz", serialize=False, _request_timeout=READYZ_TIMEOUT)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        status = api_status(exc)
        if status in READYZ_UNKNOWN:
            return None
        if status in TRANSIENT_STATUSES:
            return False
        raise
    return True
