# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to the kip.image_puller collection: not a public API, may change without notice.
#
# The role's variables, checked and normalised once: what meta/argument_specs.yml cannot say.
# AWX surveys and `-e` hand over strings ("1", "true", JSON); the upstream ConfigMap form is
# JSON strings and `a;b;` lists. Everything comes out as proper types. Pure.
"""Check and normalise the image_puller role variables."""

from __future__ import annotations

import difflib
import json
import math
import re

from ansible.module_utils.common.validation import check_type_bool, check_type_float, check_type_int

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import arch
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import (
    ImageListError,
    parse_image_list,
    reference_problem,
)
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import pull_secrets
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.mode import MODES, other_mode, reserved_names
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.names import INIT_CONTAINER, derived_names
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quantity import (
    QuantityError,
    parse_quantity,
)
from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.seeds import (
    VARIABLE as CONFIG_VARIABLE,
    ConfigError,
    merge,
    read_config,
)

PREFIX = "image_puller_"
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
# Kubernetes' rules for label and annotation keys (qualified names) and label values.
LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
TOLERATION_KEYS = frozenset(("key", "operator", "value", "effect", "tolerationSeconds"))
TOLERATION_OPERATORS = ("Exists", "Equal")
TOLERATION_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
AFFINITY_KEYS = frozenset(("nodeAffinity", "podAffinity", "podAntiAffinity"))
STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by")
# Shorter intervals make the kubelet's restart back-off, not the interval, set the pace.
MIN_CACHING_INTERVAL_SECONDS = 10
# Unknown image_puller_* variables are usually misspelt ones: suggest the nearest known name.
SUGGESTION_CUTOFF = 0.6
PLATFORMS = ("auto", "kubernetes", "openshift")
DEPLOYER_KINDS = ("User", "Group", "ServiceAccount")
# Role variables that are only handed to the modules' connection options, never checked here.
CONNECTION_VARIABLES = ("kubeconfig", "context", "host", "api_key", "ca_cert")
# Variables read only by the role's tasks: what to do, not how the objects look.
TASK_VARIABLES = ("state", "adopt")


def qualified_name_problem(key: str) -> str | None:
    """Why ``key`` is not a label or annotation key (``[prefix/]name``), or None."""
    parts = key.split("/")
    if len(parts) > 2:
        return f"key {key!r} has more than one '/'"
    name = parts[-1]
    if len(parts) == 2 and (not parts[0] or len(parts[0]) > 253 or not DNS1123_SUBDOMAIN.fullmatch(parts[0])):
        return f"key {key!r}: the prefix before '/' must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.')"
    if not name or len(name) > 63 or not LABEL_NAME.fullmatch(name):
        return (f"key {key!r}: the name must be at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


def label_value_problem(key: str, value: str) -> str | None:
    """Why ``value`` is not a label value, or None."""
    if value and (len(value) > 63 or not LABEL_NAME.fullmatch(value)):
        return (f"value {value!r} of {key!r} must be empty or at most 63 letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit")
    return None


class SettingsError(ValueError):
    """One or more role variables are invalid; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__(self.errors[0] if len(self.errors) == 1 else
                         f"{len(self.errors)} problems:\n- " + "\n- ".join(self.errors))


class _Checker:
    def __init__(self, raw: dict, load_text):
        self.raw = raw
        self.load_text = load_text
        self.errors: list[str] = []

    def fail(self, variable: str, message: str) -> None:
        self.errors.append(f"{PREFIX}{variable}: {message}")

    def text(self, variable: str, *, pattern=None, rule: str = "", max_length: int | None = None,
             empty_ok: bool = False) -> str | None:
        value = self.raw.get(PREFIX + variable)
        if value is None:
            value = ""
        if not isinstance(value, str):
            self.fail(variable, f"expected a string, got {type(value).__name__} {value!r}")
            return None
        value = value.strip()
        if not value:
            if not empty_ok:
                self.fail(variable, "must not be empty")
                return None
            return ""
        if max_length and len(value) > max_length:
            self.fail(variable, f"must be at most {max_length} characters, got {len(value)}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(variable, f"must be {rule}, got \"{value}\"")
            return None
        return value

    def integer(self, variable: str, *, minimum: int) -> int | None:
        # Ansible's own conversion, so what the argument spec accepts ("600", 600.0) is accepted here.
        value = self.raw.get(PREFIX + variable)
        try:
            value = check_type_int(value.strip() if isinstance(value, str) else value)
        except TypeError:
            self.fail(variable, f"expected a whole number, got {value!r}")
            return None
        if value < minimum:
            self.fail(variable, f"must be at least {minimum}, got {value}")
            return None
        return value

    def hours(self, variable: str, *, minimum_seconds: int) -> float | int | None:
        """A number of hours, fractions allowed (0.25 is 15 minutes), of at least minimum_seconds.

        Converted as the argument specification's type float converts it (Ansible's check_type_float).
        """
        value = self.raw.get(PREFIX + variable)
        try:
            if isinstance(value, bool):
                raise TypeError(value)
            number = check_type_float(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number):
            self.fail(variable, f"expected a number of hours such as 1 or 0.25, got {value!r}")
            return None
        if round(number * 3600) < minimum_seconds:
            self.fail(variable, f"must be at least {minimum_seconds} seconds ({minimum_seconds / 3600:.4f} hours), got {value}")
            return None
        return int(number) if number.is_integer() else number

    def boolean(self, variable: str) -> bool | None:
        # Ansible's own conversion: true/false, yes/no, y/n, on/off, 1/0, t/f, any case.
        value = self.raw.get(PREFIX + variable)
        try:
            return check_type_bool(value.strip() if isinstance(value, str) else value)
        except TypeError:
            self.fail(variable, f"expected true or false, got {value!r}")
            return None

    def quantity(self, variable: str, resource: str):
        value = self.raw.get(PREFIX + variable)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = repr(value)  # YAML read an unquoted .05 as a float
        if not isinstance(value, str) or not value.strip():
            self.fail(variable, f"expected a Kubernetes {resource} quantity, got {value!r}")
            return None, None
        value = value.strip()
        try:
            amount = parse_quantity(value, what=f"{PREFIX}{variable}")
        except QuantityError as exc:
            self.errors.append(str(exc))
            return None, None
        if amount <= 0:
            self.fail(variable, f"must be greater than zero, got \"{value}\"")
            return None, None
        return value, amount

    def structured(self, variable: str, expected: type, example: str):
        """A mapping or list given as YAML, or as the upstream JSON string."""
        value = self.raw.get(PREFIX + variable)
        if value is None or (isinstance(value, str) and not value.strip()):
            return expected()
        if isinstance(value, str):
            try:
                value = self.load_text(value)
            except Exception as exc:  # pylint: disable=broad-exception-caught
                # json and yaml raise different types; both mean "not parseable".
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.fail(variable, f"is a string but not valid JSON or YAML ({reason}); "
                                    f"expected for example {example}")
                return None
            if value is None:
                return expected()
        if not isinstance(value, expected):
            self.fail(variable, f"expected a {'mapping' if expected is dict else 'list'} "
                                f"(or its JSON string) such as {example}, got {type(value).__name__}")
            return None
        return value

    def string_map(self, variable: str, example: str, *, label_values: bool = True) -> dict | None:
        """A mapping with label/annotation keys; ``label_values`` also checks values as label values."""
        value = self.structured(variable, dict, example)
        if value is None:
            return None
        bad = [key for key, item in value.items() if not isinstance(key, str) or not isinstance(item, str)]
        if bad:
            self.fail(variable, f"keys and values must be strings; quote {', '.join(repr(k) for k in bad)}")
            return None
        problems = [qualified_name_problem(key) or (label_value_problem(key, item) if label_values else None)
                    for key, item in value.items()]
        for problem in problems:
            if problem:
                self.fail(variable, problem)
        return None if any(problems) else dict(value)

    def tolerations(self) -> list | None:
        value = self.structured("tolerations", list, '[{"key": "dedicated", "operator": "Equal", '
                                                     '"value": "gpu", "effect": "NoSchedule"}]')
        if value is None:
            return None
        ok = True
        for position, item in enumerate(value, start=1):
            where = f"toleration {position}"
            if not isinstance(item, dict):
                self.fail("tolerations", f"{where}: expected a mapping, got {type(item).__name__}")
                ok = False
                continue
            unknown = sorted(str(k) for k in item if k not in TOLERATION_KEYS)
            if unknown:
                self.fail("tolerations", f"{where}: unknown key(s) {', '.join(unknown)}; "
                                         f"allowed: {', '.join(sorted(TOLERATION_KEYS))}")
                ok = False
            operator = item.get("operator", "Equal")
            if operator not in TOLERATION_OPERATORS:
                self.fail("tolerations", f"{where}: operator must be Exists or Equal, got {operator!r}")
                ok = False
            elif operator == "Exists" and item.get("value"):
                self.fail("tolerations", f"{where}: operator Exists takes no value")
                ok = False
            effect = item.get("effect")
            if effect not in (None, "") + TOLERATION_EFFECTS:
                self.fail("tolerations", f"{where}: effect must be one of {', '.join(TOLERATION_EFFECTS)}, "
                                         f"got {effect!r}")
                ok = False
            key, toleration_value = item.get("key"), item.get("value")
            if (key is not None and not isinstance(key, str)) or (toleration_value is not None and not isinstance(toleration_value, str)):
                self.fail("tolerations", f"{where}: key and value must be strings")
                ok = False
                continue
            problem = (qualified_name_problem(key) if key else None) or label_value_problem(key or "", toleration_value or "")
            if problem:
                self.fail("tolerations", f"{where}: {problem}")
                ok = False
            if not item.get("key") and operator != "Exists":
                self.fail("tolerations", f"{where}: an empty key needs operator Exists")
                ok = False
        return list(value) if ok else None

    def affinity(self) -> dict | None:
        value = self.structured("affinity", dict, '{"nodeAffinity": {...}}')
        if value is None:
            return None
        unknown = sorted(str(k) for k in value if k not in AFFINITY_KEYS)
        if unknown:
            self.fail("affinity", f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(AFFINITY_KEYS))}")
            return None
        return dict(value)

    def name_list(self, variable: str) -> list | None:
        """Upstream IMAGE_PULL_SECRETS form `a;b;` or a list of names."""
        value = self.raw.get(PREFIX + variable)
        if value is None:
            return []
        if isinstance(value, str):
            value = [part.strip() for part in re.split(r"[;,\n]", value)]
            value = [part for part in value if part]
        if not isinstance(value, list):
            self.fail(variable, f"expected a list of names or \"a;b;\", got {type(value).__name__}")
            return None
        names = []
        for item in value:
            if isinstance(item, dict) and set(item) == {"name"}:
                item = item["name"]  # the Kubernetes LocalObjectReference form
            if not isinstance(item, str) or not DNS1123_SUBDOMAIN.fullmatch(item) or len(item) > 253:
                self.fail(variable, f"\"{item}\" is not a Secret name (a DNS-1123 subdomain: lowercase "
                                    "letters, digits, '-' and '.')")
                return None
            if item not in names:
                names.append(item)
        return names


def unknown_variables(given, known) -> list[str]:
    """One message per name in ``given`` that is not in ``known``, naming the closest known one."""
    known = sorted(set(known))
    # Compared without the prefix every name shares, which would make any two names look alike.
    short = {name.removeprefix(PREFIX): name for name in known}
    problems = []
    for name in sorted(set(given) - set(known)):
        close = difflib.get_close_matches(name.removeprefix(PREFIX), list(short), n=1, cutoff=SUGGESTION_CUTOFF)
        hint = f"did you mean {short[close[0]]}?" if close else "see ansible-doc -t role kip.image_puller.image_puller"
        problems.append(f"{name}: not a variable of the role kip.image_puller.image_puller; {hint}")
    return problems


def _deployer(check: _Checker) -> dict | None:
    """image_puller_deployer as an RBAC subject, or None when unset."""
    value = check.raw.get(PREFIX + "deployer") or {}
    if not isinstance(value, dict):
        check.fail("deployer", f"expected a mapping with kind, name (and namespace), got {type(value).__name__}")
        return None
    if not value:
        return None
    kind, name, namespace = value.get("kind"), value.get("name"), value.get("namespace")
    if kind not in DEPLOYER_KINDS or not name or (kind == "ServiceAccount" and not namespace):
        check.fail("deployer", "expected kind (User, Group or ServiceAccount), name, and namespace for a "
                               f"ServiceAccount, got {json.dumps(value, sort_keys=True)}")
        return None
    if kind == "ServiceAccount":
        return {"kind": kind, "name": str(name), "namespace": str(namespace)}
    return {"kind": kind, "name": str(name), "apiGroup": "rbac.authorization.k8s.io"}


def _registry_credentials(check: _Checker, out: dict) -> None:
    """The pull Secrets made from image_puller_registry_credentials, by name and registry only (no credential).

    Their names join image_puller_image_pull_secrets, after the names given there.
    Errors name the entry and key, never a value (pull_secrets.py).
    """
    out["pull_secrets"] = []
    name = check.raw.get(PREFIX + "daemonset_name")
    name = name.strip() if isinstance(name, str) else ""
    try:
        made = pull_secrets.public(pull_secrets.pull_secrets(check.raw.get(pull_secrets.VARIABLE), name or "x"))
    except pull_secrets.PullSecretError as exc:
        check.errors.extend(exc.errors)
        return
    out["pull_secrets"] = made
    if out["image_pull_secrets"] is not None:
        out["image_pull_secrets"] += [secret["name"] for secret in made if secret["name"] not in out["image_pull_secrets"]]


def _no_file(path):
    raise ValueError("reading files is not available here")


def _from_config(raw: dict, load_text, load_file, defaults) -> tuple[dict, dict, list[str]]:
    """Lay image_puller_config under the explicit variables; the config part of the settings, and errors."""
    try:
        config = read_config(raw.get(CONFIG_VARIABLE), load_file=load_file, load_text=load_text)
    except ConfigError as exc:
        return raw, {}, exc.errors
    if config is None:
        return raw, {}, []
    merged, applied, overridden = merge(raw, config, defaults or {})
    return merged, {"format": config["format"], "source": config["source"], "applied": applied,
                    "overridden": overridden, "ignored": config["ignored"]}, []


def _where(variable: str, config: dict) -> str:
    """A variable as errors name it: with the foreign key it came from, if it came from image_puller_config."""
    origin = (config.get("applied") or {}).get(variable)
    return f"{variable} (from {CONFIG_VARIABLE} {origin})" if origin else variable


def notes(settings: dict) -> list[str]:
    """What the user should see before the deploy: where settings came from, and derived container names."""
    lines = []
    config = settings.get("config") or {}
    if config:
        lines.append(f"{CONFIG_VARIABLE}: read {config['format']} from {config['source']}")
        if config["applied"]:
            lines.append(f"{CONFIG_VARIABLE} sets: " + ", ".join(f"{variable} ({origin})" for variable, origin in config["applied"].items()))
        if config["overridden"]:
            lines.append("set explicitly, winning over " + CONFIG_VARIABLE + ": " + ", ".join(config["overridden"]))
        if config["ignored"]:
            lines.append(f"{CONFIG_VARIABLE} ignored (no meaning here): " + "; ".join(config["ignored"]))
    if settings.get("pull_secrets"):
        lines.append("pull Secrets made from image_puller_registry_credentials: " + ", ".join(
            f"{secret['name']} ({secret['registry']})" for secret in settings["pull_secrets"]))
    derived = set(settings.get("derived_names") or ())
    if derived:
        lines.append("derived container names: " + ", ".join(
            f"{item['name']}={item.get('image') or ','.join(item['arch'].values())}"
            for item in settings.get("images") or () if item["name"] in derived))
    lines.extend(arch.describe(settings.get("daemonsets") or []))
    return lines


def normalise(raw: dict, *, load_text=json.loads, reserved=(INIT_CONTAINER,), require_images: bool = True,
              given=(), known=None, defaults=None, load_file=_no_file) -> dict:
    """Check the role variables in ``raw`` (keyed by their full ``image_puller_*`` names).

    Returns the settings without the prefix, with proper types; raises :class:`SettingsError`
    listing every problem. ``require_images=False`` accepts an empty image list (removal needs
    none). ``load_text`` parses string forms of mappings and lists (JSON by
    default; the filter plugin passes a YAML loader, which reads JSON too). When ``known`` is
    given, every name in ``given`` (the ``image_puller_*`` variables that are set) must be in it.

    ``image_puller_config`` (a foreign configuration, see seeds.py; a file is read with
    ``load_file``) sets the variables it maps to, unless they are explicit: a variable is
    explicit when its value differs from its entry in ``defaults`` (the argument
    specification's defaults; without them, when it is set and not blank).
    """
    raw, config, config_errors = _from_config(raw, load_text, load_file, defaults)
    check = _Checker(raw, load_text)
    check.errors.extend(config_errors)
    if known is not None:
        check.errors.extend(unknown_variables(given, known))
    out: dict = {"config": config}
    out["mode"] = check.text("mode")
    if out["mode"] is not None and out["mode"] not in MODES:
        check.fail("mode", f"must be one of {', '.join(MODES)}, got \"{out['mode']}\"")
        out["mode"] = None
    out["other_mode"] = other_mode(out["mode"] or "")
    # the init shape's keeper container shares the pod's container names with the images
    reserved = tuple(reserved) + tuple(name for name in reserved_names(out["mode"] or "") if name not in reserved)
    try:
        out["images"], out["derived_names"] = parse_image_list(
            raw.get(PREFIX + "images"), variable=_where(PREFIX + "images", config), reserved=reserved,
            # an unreadable image_puller_config is the problem, not the empty list it left
            allow_empty=not require_images or bool(config_errors))
    except ImageListError as exc:
        check.errors.extend(exc.errors)
    label = "a DNS-1123 label (lowercase letters, digits, '-', at most 63)"
    out["daemonset_name"] = check.text("daemonset_name", pattern=DNS1123_LABEL, rule=label, max_length=63)
    out["namespace"] = check.text("namespace", pattern=DNS1123_LABEL, rule=label, max_length=63)
    out["caching_interval_hours"] = check.hours("caching_interval_hours", minimum_seconds=MIN_CACHING_INTERVAL_SECONDS)
    if out["caching_interval_hours"] is not None:
        # What each cached container sleeps before it exits and the kubelet pulls its image again.
        out["caching_interval_seconds"] = round(out["caching_interval_hours"] * 3600)
    amounts = {}
    for resource in ("memory", "cpu", "ephemeral_storage"):
        for kind in ("request", "limit"):
            key = f"caching_{resource}_{kind}"
            out[key], amounts[key] = check.quantity(key, resource.replace("_", "-"))
        request, limit = amounts[f"caching_{resource}_request"], amounts[f"caching_{resource}_limit"]
        if request is not None and limit is not None and request > limit:
            check.fail(f"caching_{resource}_request",
                       f"\"{out[f'caching_{resource}_request']}\" is more than {PREFIX}caching_{resource}_limit "
                       f"\"{out[f'caching_{resource}_limit']}\"; a request cannot exceed its limit")
    out["node_selector"] = check.string_map("node_selector", '{"kubernetes.io/os": "linux"}')
    out["affinity"] = check.affinity()
    out["tolerations"] = check.tolerations()
    out["image_pull_secrets"] = check.name_list("image_pull_secrets")
    _registry_credentials(check, out)
    out["daemonset_annotations"] = check.string_map("daemonset_annotations", '{"owner": "platform"}', label_values=False)
    out["labels"] = check.string_map("labels", '{"team": "platform"}')
    if out["labels"]:
        taken = sorted(key for key in out["labels"] if key in STANDARD_LABELS)
        if taken:
            check.fail("labels", f"{', '.join(taken)} is set by the role (it selects the pods); use another key")
            out["labels"] = None
    puller = check.text("puller_image")
    if puller is not None:
        problem = reference_problem(puller)
        if problem:
            check.fail("puller_image", f"invalid image reference \"{puller}\": {problem}")
            puller = None
    out["puller_image"] = puller
    out["priority_class_name"] = check.text("priority_class_name", pattern=DNS1123_SUBDOMAIN,
                                            rule="a PriorityClass name (DNS-1123 subdomain)",
                                            max_length=253, empty_ok=True)
    out["run_as_user"] = check.integer("run_as_user", minimum=1)
    for flag in ("wait", "create_namespace", "pod_security", "quota_check", "refresh", "network_policy", "label_cached_nodes"):
        out[flag] = check.boolean(flag)
    out["wait_timeout"] = check.integer("wait_timeout", minimum=1)
    out["platform"] = check.text("platform")
    if out["platform"] is not None and out["platform"] not in PLATFORMS:
        check.fail("platform", f"must be one of {', '.join(PLATFORMS)}, got \"{out['platform']}\"")
    # auto: the role asks the API server (tasks/platform.yml) and sets this then
    out["openshift"] = out["platform"] == "openshift"
    out["deployer"] = _deployer(check)
    if out["daemonset_name"] and out["namespace"]:
        out.update(derived_names(out["daemonset_name"], out["namespace"], out["labels"] or {}))
        # per-architecture images: which DaemonSets, each with its name, selector and images (arch.py)
        if out.get("images") is not None and out["node_selector"] is not None and out["labels"] is not None:
            split_problems = arch.problems(out["images"], name=out["daemonset_name"], node_selector=out["node_selector"])
            check.errors.extend(split_problems)
            if not split_problems:
                out["daemonsets"] = arch.daemonsets(out["images"], name=out["daemonset_name"], selector=out["selector"],
                                                    object_labels=out["object_labels"], node_selector=out["node_selector"])
    # Connection: blank or unset means "leave it to K8S_AUTH_VERIFY_SSL" (an AWX survey's blank answer).
    validate_certs = raw.get(PREFIX + "validate_certs")
    if validate_certs is None or (isinstance(validate_certs, str) and not validate_certs.strip()):
        out["validate_certs"] = None
    else:
        out["validate_certs"] = check.boolean("validate_certs")
    if check.errors:
        # Name the foreign key behind a variable that came from image_puller_config.
        errors = check.errors
        for variable in (config.get("applied") or {}):
            if variable != PREFIX + "images":
                errors = [_where(variable, config) + error[len(variable):] if error.startswith(variable + ":") else error
                          for error in errors]
        raise SettingsError(errors)
    out["notes"] = notes(out)
    return out
