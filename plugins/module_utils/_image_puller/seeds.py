# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to the kip.image_puller collection: not a public API, may change without notice.
#
# The configurations of the systems the role replaces, taken as their users have them
# (image_puller_config), translated into image_puller_* variables. Pure: no cluster, no files
# (the caller hands a loader), no Ansible imports. The upstream names come from upstream.KEYS.
"""Read a foreign image puller configuration into image_puller_* variables."""

from __future__ import annotations

import difflib
import json

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller import upstream

VARIABLE = "image_puller_config"
PREFIX = "image_puller_"

UPSTREAM_DATA = "upstream kubernetes-image-puller ConfigMap data"
UPSTREAM_ENV = "upstream kubernetes-image-puller Deployment environment"
OPENSHIFT = "upstream kubernetes-image-puller OpenShift template parameters"
HELM = "upstream kubernetes-image-puller Helm chart values"
PREPULLER = "images-prepuller chart values"
JARVICE = "jarvice-cache-pull image list"
JARVICE_DATA = "jarvice-cache-pull ConfigMap data"
FORMATS = (UPSTREAM_DATA, UPSTREAM_ENV, OPENSHIFT, HELM, PREPULLER, JARVICE, JARVICE_DATA)

_CONTROLLER = "the role runs no controller Deployment"

# Upstream keys of the controller's own Deployment, not of the DaemonSet (deploy/openshift/app.yaml).
UPSTREAM_ENV_IGNORED = {"DEPLOYMENT_NAME": _CONTROLLER}
# OpenShift template parameters beyond the ConfigMap keys (deploy/openshift/*.yaml): all of them
# describe the controller (its image is not the puller image, which is KIP_IMAGE).
OPENSHIFT_IGNORED = {
    "IMAGE": "the controller's image; the puller image is KIP_IMAGE",
    "IMAGE_TAG": "the controller's image; the puller image is KIP_IMAGE",
    "DEPLOYMENT_NAME": _CONTROLLER,
    "SERVICEACCOUNT_NAME": "the role names its ServiceAccount after the DaemonSet",
    "DEPLOYMENT_CPU_REQUEST": _CONTROLLER,
    "DEPLOYMENT_CPU_LIMIT": _CONTROLLER,
    "DEPLOYMENT_MEMORY_REQUEST": _CONTROLLER,
    "DEPLOYMENT_MEMORY_LIMIT": _CONTROLLER,
}
OPENSHIFT_ONLY = frozenset(OPENSHIFT_IGNORED)
# Helm values that are no upstream ConfigMap key. appName is the older charts' name of
# deploymentName (the value of DAEMONSET_NAME).
HELM_SECTIONS = ("image", "serviceAccount", "configMap")
HELM_ALIASES = {"appName": upstream.DAEMONSET_NAME}
HELM_IGNORED = {
    "serviceAccount.name": "the role names its ServiceAccount after the DaemonSet",
    "configMap.name": "the role names its ConfigMap after the DaemonSet",
    "resources": _CONTROLLER,
    "updateStrategy": _CONTROLLER,
    "deploymentAnnotations": _CONTROLLER,
}
# Upstream sets it on its controller only; the role gives it to the puller pods (README's table).
# The chart's default is an empty mapping, which means none.
HELM_PRIORITY_CLASS = "priorityClassName"
# images-prepuller (seed 003).
PREPULLER_KEY, PREPULLER_IMAGES = "docker", "images"
PREPULLER_IGNORED = {"hostPath": "nothing is mounted from the node; the kubelet keeps the images"}
# jarvice-cache-pull (seed 002): its image objects and the ConfigMap's interval literal (seconds).
JARVICE_KEYS = ("ref", "registry", "private", "config", "arch")
JARVICE_DEFAULT_SECRET = "jarvice-docker"
JARVICE_INTERVAL = "interval"


class ConfigError(ValueError):
    """image_puller_config cannot be read; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


def _variable(key: str) -> str:
    return upstream.KEYS[key][0]


def _split_image(reference: str) -> tuple[str, str]:
    colon, slash = reference.rfind(":"), reference.rfind("/")
    return (reference[:colon], reference[colon + 1:]) if colon > slash else (reference, "")


# The upstream puller image's repository and tag, for a configuration that gives only one of them.
DEFAULT_PULLER_REPOSITORY, DEFAULT_PULLER_TAG = _split_image(upstream.KEYS[upstream.KIP_IMAGE][1])


def _helm_paths() -> tuple[dict[str, str], tuple[str, str]]:
    """Helm value path -> upstream key, and the two paths that make the puller image, from upstream.KEYS."""
    paths, image = {}, ("", "")
    for key, (_variable_name, _default, helm) in upstream.KEYS.items():
        parts = [part.strip() for part in helm.split("+")]
        if len(parts) == 2:
            image = (parts[0], parts[1])
        elif not helm.startswith("("):
            paths[helm] = key
    return paths, image


HELM_PATHS, HELM_IMAGE = _helm_paths()
# The top-level keys that tell a Helm values file.
HELM_TOP_LEVEL = frozenset(path.split(".")[0] for path in (*HELM_SECTIONS, *HELM_PATHS, *HELM_IGNORED, *HELM_ALIASES,
                                                           *HELM_IMAGE, HELM_PRIORITY_CLASS))


class _Reader:
    def __init__(self, fmt: str):
        self.format = fmt
        self.variables: dict[str, object] = {}
        self.origins: dict[str, str] = {}
        self.ignored: list[str] = []
        self.errors: list[str] = []

    def fail(self, message: str) -> None:
        self.errors.append(f"{VARIABLE} ({self.format}): {message}")

    def unknown(self, key: str, known) -> None:
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(known))}"
        self.fail(f"unknown key {key!r}; {hint}")

    def set(self, variable: str, value, origin: str) -> None:
        if variable in self.variables and self.variables[variable] != value:
            self.fail(f"{origin} and {self.origins[variable]} both set {variable} and differ; keep one")
            return
        self.variables[variable] = value
        self.origins.setdefault(variable, origin)

    def ignore(self, key: str, why: str) -> None:
        self.ignored.append(f"{key} ({why})")

    def puller_image(self, repository, tag, origin: str) -> None:
        for part in (repository, tag):
            if part is not None and not isinstance(part, str):
                self.fail(f"{origin}: expected strings, got {type(part).__name__} {part!r}")
                return
        self.set(PREFIX + "puller_image", f"{repository or DEFAULT_PULLER_REPOSITORY}:{tag or DEFAULT_PULLER_TAG}", origin)

    def result(self, source: str) -> dict:
        if self.errors:
            raise ConfigError(self.errors)
        return {"format": self.format, "source": source, "variables": self.variables,
                "origins": self.origins, "ignored": self.ignored}


def _upstream_keys(reader: _Reader, data: dict, ignored: dict[str, str], *, openshift: bool) -> None:
    """Upstream ConfigMap keys (and, for OpenShift, the template's own parameters) -> variables."""
    known = set(upstream.KEYS) | set(ignored) | (OPENSHIFT_ONLY if openshift else set())
    for key, value in data.items():
        if key not in known:
            reader.unknown(str(key), known)
        elif key in ignored:
            reader.ignore(key, ignored[key])
        else:
            reader.set(_variable(key), value, key)


def _name_value_list(reader: _Reader, items: list) -> dict | None:
    """A Deployment's env or an OpenShift template's parameters: [{name, value}] -> {name: value}."""
    out = {}
    for position, item in enumerate(items, start=1):
        extra = sorted(str(k) for k in item if k not in ("name", "value"))
        if "valueFrom" in item:
            reader.fail(f"entry {position} ({item.get('name')}) takes its value from elsewhere (valueFrom); "
                        "give the value itself")
        elif extra:
            reader.fail(f"entry {position} ({item.get('name')}): unknown key(s) {', '.join(extra)}; "
                        "expected name and value")
        elif not isinstance(item.get("name"), str):
            reader.fail(f"entry {position}: name must be a string")
        else:
            out[item["name"]] = item.get("value", "")
    return out


def _helm(reader: _Reader, values: dict) -> None:
    flat = {}
    for key, value in values.items():
        if key in HELM_SECTIONS and isinstance(value, dict):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        elif key in HELM_SECTIONS and value is not None:
            reader.fail(f"{key} must be a mapping, got {type(value).__name__}")
        elif value is not None or key not in HELM_SECTIONS:
            flat[key] = value
    known = set(HELM_PATHS) | set(HELM_ALIASES) | set(HELM_IGNORED) | set(HELM_IMAGE) | {HELM_PRIORITY_CLASS}
    for path, value in flat.items():
        if path not in known:
            reader.unknown(path, known)
        elif path == HELM_PRIORITY_CLASS:
            if not is_empty(value):
                reader.set(PREFIX + "priority_class_name", value, path)
        elif path in HELM_IGNORED:
            reader.ignore(path, HELM_IGNORED[path])
        elif path in HELM_PATHS:
            reader.set(_variable(HELM_PATHS[path]), value, path)
        elif path in HELM_ALIASES:
            reader.set(_variable(HELM_ALIASES[path]), value, path)
    if any(path in flat for path in HELM_IMAGE):
        reader.puller_image(flat.get(HELM_IMAGE[0]), flat.get(HELM_IMAGE[1]), " + ".join(HELM_IMAGE))


def _prepuller(reader: _Reader, values: dict) -> None:
    for key in values:
        if key != PREPULLER_KEY:
            reader.unknown(str(key), [PREPULLER_KEY])
    docker = values.get(PREPULLER_KEY)
    if not isinstance(docker, dict):
        reader.fail(f"{PREPULLER_KEY} must be a mapping with {PREPULLER_IMAGES}, got {type(docker).__name__}")
        return
    for key in docker:
        if key in PREPULLER_IGNORED:
            reader.ignore(f"{PREPULLER_KEY}.{key}", PREPULLER_IGNORED[key])
        elif key != PREPULLER_IMAGES:
            reader.unknown(f"{PREPULLER_KEY}.{key}", [f"{PREPULLER_KEY}.{k}" for k in (PREPULLER_IMAGES, *PREPULLER_IGNORED)])
    images = docker.get(PREPULLER_IMAGES)
    if not isinstance(images, list) or not all(isinstance(item, str) for item in images):
        reader.fail(f"{PREPULLER_KEY}.{PREPULLER_IMAGES} must be a list of image references")
        return
    # Plain references: image_puller_images derives each container name.
    reader.set(PREFIX + "images", list(images), f"{PREPULLER_KEY}.{PREPULLER_IMAGES}")


def _jarvice_image(reader: _Reader, where: str, entry: dict):
    """The image_puller_images entry of a jarvice image object: ref on its registry, or, with an arch map, that map
    (jarvice pulls an arch map's images only on nodes of those architectures: one DaemonSet per architecture)."""
    ref, registry, arch = entry.get("ref"), entry.get("registry") or "", entry.get("arch")
    if not isinstance(ref, str) or not ref.strip():
        reader.fail(f"{where}: ref must be a non-empty string")
        return None
    if not isinstance(registry, str):
        reader.fail(f"{where}: registry must be a string")
        return None
    if arch:
        if not isinstance(arch, dict) or not all(isinstance(v, str) and v.strip() for v in arch.values()):
            reader.fail(f"{where}: arch must map each architecture to an image reference")
            return None
        # the architectures and references are checked with image_puller_images (images.py, arch.py)
        return {"arch": {str(key): value.strip() for key, value in arch.items()}}
    ref = ref.strip()
    # Without an arch map the image is ref on registry (unless ref already names it).
    if registry and not ref.startswith(registry.rstrip("/") + "/"):
        return f"{registry.rstrip('/')}/{ref}"
    return ref


def _jarvice(reader: _Reader, entries: list, origin: str) -> None:
    images, secrets = [], []
    for position, entry in enumerate(entries, start=1):
        where = f"entry {position}" + (f" (ref {entry.get('ref')!r})" if isinstance(entry, dict) else "")
        if not isinstance(entry, dict):
            reader.fail(f"{where}: expected an image object with {', '.join(JARVICE_KEYS)}, got {type(entry).__name__}")
            continue
        for key in entry:
            if key not in JARVICE_KEYS:
                reader.fail(f"{where}: unknown key {key!r}; known keys: {', '.join(JARVICE_KEYS)}")
        image = _jarvice_image(reader, where, entry)
        private, config = entry.get("private", False), entry.get("config")
        if not isinstance(private, bool):
            reader.fail(f"{where}: private must be true or false, got {private!r}")
            continue
        if config is not None and not isinstance(config, str):
            reader.fail(f"{where}: config must be the name of a Secret, got {config!r}")
            continue
        if private:
            secret = config or JARVICE_DEFAULT_SECRET
            if secret not in secrets:
                secrets.append(secret)
        elif config:
            reader.ignore(f"{where}: config", "the image is not private, so no pull secret is needed")
        if image:
            images.append(image)
    reader.set(PREFIX + "images", images, origin)
    if secrets:
        reader.set(PREFIX + "image_pull_secrets", secrets, f"private and config of the {origin}")


def _jarvice_data(reader: _Reader, data: dict) -> None:
    entries = []
    for key, value in sorted(data.items()):
        if key == JARVICE_INTERVAL:
            seconds = str(value).strip()
            if not seconds.isdigit() or int(seconds) < 1:
                reader.fail(f"{JARVICE_INTERVAL} must be a whole number of seconds, got {value!r}")
            else:
                reader.set(PREFIX + "caching_interval_hours", int(seconds) / 3600, f"{JARVICE_INTERVAL} (seconds)")
            continue
        try:
            loaded = json.loads(value) if isinstance(value, str) else None
        except ValueError as exc:
            reader.fail(f"file {key!r} is not valid JSON ({exc}); expected the JSON list of image objects")
            continue
        if not isinstance(loaded, list):
            reader.fail(f"file {key!r}: expected the JSON list of image objects, got {type(loaded or value).__name__}")
            continue
        entries.extend(loaded)
    _jarvice(reader, entries, "image list")


def _is_name_value_list(value: list) -> bool:
    return all(isinstance(item, dict) and "name" in item for item in value)


def _looks_like_jarvice_data(value: dict) -> bool:
    return JARVICE_INTERVAL in value or any(isinstance(item, str) and item.lstrip().startswith("[")
                                            for item in value.values())


def translate(value, source: str = "inline") -> dict:
    """Detect the format of ``value`` and return what it sets.

    Returns ``{"format", "source", "variables": {image_puller_*: value}, "origins": {variable: the
    foreign key it came from}, "ignored": ["key (why)"]}``. Raises :class:`ConfigError`.
    """
    if isinstance(value, dict) and value.get("kind") == "ConfigMap":
        data = value.get("data")
        if not isinstance(data, dict) or not data:
            raise ConfigError([f"{VARIABLE}: a ConfigMap manifest without data; nothing to read"])
        inner = translate(data, source)
        inner["format"] += " (of a ConfigMap manifest)"
        return inner
    if isinstance(value, list) and value and all(isinstance(item, dict) and "ref" in item for item in value):
        reader = _Reader(JARVICE)
        _jarvice(reader, value, "image list")
    elif isinstance(value, list) and value and _is_name_value_list(value):
        names = {item["name"] for item in value}
        # DEPLOYMENT_NAME is in the controller's environment too (deploy/openshift/app.yaml).
        reader = _Reader(OPENSHIFT if names & (OPENSHIFT_ONLY - set(UPSTREAM_ENV_IGNORED)) else UPSTREAM_ENV)
        data = _name_value_list(reader, value)
        if data is not None:
            openshift = reader.format == OPENSHIFT
            _upstream_keys(reader, data, OPENSHIFT_IGNORED if openshift else UPSTREAM_ENV_IGNORED, openshift=openshift)
    elif isinstance(value, dict) and value:
        keys = set(value)
        if PREPULLER_KEY in keys:
            reader = _Reader(PREPULLER)
            _prepuller(reader, value)
        elif keys & HELM_TOP_LEVEL:
            reader = _Reader(HELM)
            _helm(reader, value)
        elif keys & OPENSHIFT_ONLY:
            reader = _Reader(OPENSHIFT)
            _upstream_keys(reader, value, OPENSHIFT_IGNORED, openshift=True)
        elif keys & set(upstream.KEYS):
            reader = _Reader(UPSTREAM_DATA)
            _upstream_keys(reader, value, {}, openshift=False)
        elif _looks_like_jarvice_data(value):
            reader = _Reader(JARVICE_DATA)
            _jarvice_data(reader, value)
        else:
            raise ConfigError([f"{VARIABLE}: cannot tell which configuration this is (keys: "
                               f"{', '.join(sorted(str(k) for k in keys))}); expected one of: {'; '.join(FORMATS)}"])
    else:
        raise ConfigError([f"{VARIABLE}: expected the path of a YAML or JSON file, or a mapping or list in one of "
                           f"these formats: {'; '.join(FORMATS)}; got {type(value).__name__} {json.dumps(value, default=str)[:80]}"])
    return reader.result(source)


def is_empty(value) -> bool:
    return value is None or (isinstance(value, (str, dict, list)) and not (value.strip() if isinstance(value, str) else value))


def read_config(value, *, load_file, load_text) -> dict | None:
    """image_puller_config -> :func:`translate` result, or None when it is empty.

    A string is the path of a YAML or JSON file on the controller (read with ``load_file``),
    unless it starts with '{' or '[' or spans lines: then it is the text itself (``load_text``).
    """
    if is_empty(value):
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")) or "\n" in text:
            source, loader, what = "inline text", load_text, "the text"
        else:
            source, loader, what = text, load_file, f"the file {text}"
        try:
            value = loader(text)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # open(), json and yaml raise different types; all mean "cannot read it".
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ConfigError([f"{VARIABLE}: cannot read {what} ({reason}); give the path of a YAML or JSON file "
                               "on the controller, or the configuration itself"]) from exc
        if is_empty(value):
            raise ConfigError([f"{VARIABLE}: {what} is empty"])
        return translate(value, source)
    return translate(value)


def _same(value, default) -> bool:
    """Whether a role variable still holds its default (blank and empty forms count as equal)."""
    if is_empty(value) and is_empty(default):
        return True
    if isinstance(value, (dict, list)) or isinstance(default, (dict, list)):
        return value == default
    return str(value).strip().lower() == str(default).strip().lower()


def merge(raw: dict, config: dict, defaults: dict) -> tuple[dict, dict, list[str]]:
    """Lay the variables ``config`` sets under the explicit ones of ``raw``.

    A variable is explicit when its value differs from its default (``defaults``, the argument
    specification's; V("1") and 1, V("") and [] count as equal): then it wins and the config's
    value is dropped. Returns the merged variables, {variable: origin} of what the config set,
    and the names of explicit variables that won over it.
    """
    merged, applied, overridden = dict(raw), {}, []
    for variable, value in config["variables"].items():
        if variable in raw and not _same(raw[variable], defaults.get(variable)):
            overridden.append(variable)
            continue
        merged[variable] = value
        applied[variable] = config["origins"][variable]
    return merged, applied, overridden
