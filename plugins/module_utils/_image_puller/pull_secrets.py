# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to the kip.image_puller collection: not a public API, may change without notice.
#
# Pull Secrets the role makes from image_puller_registry_credentials: one
# kubernetes.io/dockerconfigjson Secret per registry, named once here. Every message written
# here names the entry and the key, never a value that could be a credential. Pure.
"""Registry credentials -> one docker-config pull Secret per registry, and their masking."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

VARIABLE = "image_puller_registry_credentials"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DATA_KEY = ".dockerconfigjson"
# Every Secret the role makes for a DaemonSet carries this label with the DaemonSet's name:
# what a later run prunes and what remove deletes, and nothing else.
LABEL = "image-puller.kip/pull-secret-of"
# Which registry a Secret is for (the registry is no secret; the annotation says what it holds).
REGISTRY_ANNOTATION = "image-puller.kip/registry"
MASK = "(masked)"
MASK_CHANGED = "(masked, changed)"
# A Secret name is a DNS-1123 subdomain of at most 253 characters.
MAX_NAME = 253
HASH_LENGTH = 8
ENTRY_KEYS = frozenset(("registry", "username", "password", "email", "docker_config"))
AUTH_KEYS = frozenset(("auth", "username", "password", "email", "identitytoken", "registrytoken", "serveraddress"))
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


class PullSecretError(ValueError):
    """image_puller_registry_credentials is invalid; ``errors`` holds one message per problem, without values."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


def registry_host(registry: str) -> str:
    """The registry as a host[:port][/path] without scheme or trailing slash, lowercased (Docker Hub's v1 URL too)."""
    host = re.sub(r"^[a-z][a-z0-9+.-]*://", "", registry.strip().lower()).rstrip("/")
    if host in ("index.docker.io/v1", "index.docker.io", "registry-1.docker.io", "docker.io"):
        return "docker.io"
    return host


def registry_slug(registry: str) -> str:
    """A DNS-1123 fragment for the registry: 127.0.0.1:5011 -> 127-0-0-1-5011, https://index.docker.io/v1/ -> docker-io."""
    return _NOT_SLUG.sub("-", registry_host(registry)).strip("-") or "registry"


def secret_names(daemonset_name: str, registries: list[str]) -> list[str]:
    """One Secret name per registry, in order: ``<daemonset>-pull-<registry slug>``, unique.

    Registries whose slugs meet (a.b:5000 and a-b-5000) or whose name would be too long get a
    short hash of the registry appended, so a name never depends on the order of the list.
    """
    slugs = [registry_slug(registry) for registry in registries]
    names = []
    for registry, slug in zip(registries, slugs):
        name = f"{daemonset_name}-pull-{slug}"
        if slugs.count(slug) > 1 or len(name) > MAX_NAME:
            digest = hashlib.sha256(registry_host(registry).encode()).hexdigest()[:HASH_LENGTH]
            name = f"{name[:MAX_NAME - HASH_LENGTH - 1].rstrip('-')}-{digest}"
        names.append(name)
    return names


def _auth_entry(username: str, password: str, email: str | None) -> dict[str, str]:
    """An auths entry as `kubectl create secret docker-registry` writes it."""
    entry = {"username": username, "password": password,
             "auth": base64.b64encode(f"{username}:{password}".encode()).decode()}
    if email:
        entry["email"] = email
    return entry


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _from_docker_config(value: Any, where: str, errors: list[str]) -> list[tuple[str, dict]]:
    """(registry, auths entry) for each registry of a docker config (a mapping or its JSON text)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            # exc.msg and the position only: the parser's text would quote the credentials
            errors.append(f"{where}.docker_config: is a string but not JSON ({getattr(exc, 'msg', 'invalid')} at line "
                          f"{getattr(exc, 'lineno', '?')} column {getattr(exc, 'colno', '?')}); give the content of "
                          "~/.docker/config.json or a mapping with auths")
            return []
    if not isinstance(value, Mapping) or not isinstance(value.get("auths"), Mapping) or not value["auths"]:
        extra = " (credsStore and credHelpers keep the credentials outside the file, where no kubelet reads them)" \
            if isinstance(value, Mapping) and (value.get("credsStore") or value.get("credHelpers")) else ""
        errors.append(f"{where}.docker_config: expected a docker config with a non-empty auths mapping, "
                      f"such as {{\"auths\": {{\"registry.example.com\": {{\"auth\": \"...\"}}}}}}{extra}")
        return []
    found = []
    for registry, entry in value["auths"].items():
        here = f"{where}.docker_config.auths[{json.dumps(str(registry))}]"
        if not _text(registry):
            errors.append(f"{where}.docker_config.auths: a registry key is empty")
            continue
        if not isinstance(entry, Mapping):
            errors.append(f"{here}: expected a mapping with auth, or username and password")
            continue
        unknown = sorted(str(key) for key in entry if key not in AUTH_KEYS)
        if unknown:
            errors.append(f"{here}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(AUTH_KEYS))}")
            continue
        if _text(entry.get("username")) and _text(entry.get("password")):
            auth = _auth_entry(entry["username"], entry["password"], entry.get("email"))
        elif _text(entry.get("auth")):
            try:
                decoded = base64.b64decode(entry["auth"], validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                decoded = ""
            if ":" not in decoded:
                errors.append(f"{here}: auth is not the base64 of username:password")
                continue
            auth = {key: entry[key] for key in ("auth", "email") if _text(entry.get(key))}
        else:
            errors.append(f"{here}: needs auth, or username and password (an identity token alone is not "
                          "used by the kubelet)")
            continue
        found.append((str(registry).strip(), auth))
    return found


def parse(value: Any) -> list[tuple[str, dict]]:
    """(registry, docker config auths entry) per registry, in order; PullSecretError lists every problem."""
    if value is None or value == "" or value == []:
        return []
    if not isinstance(value, list):
        raise PullSecretError([f"{VARIABLE}: expected a list of entries with registry, username and password, "
                               f"or with docker_config; got {type(value).__name__}"])
    errors: list[str] = []
    found: list[tuple[str, dict]] = []
    for position, item in enumerate(value, start=1):
        where = f"{VARIABLE}[{position}]"
        if not isinstance(item, Mapping):
            errors.append(f"{where}: expected a mapping, got {type(item).__name__}")
            continue
        unknown = sorted(str(key) for key in item if key not in ENTRY_KEYS)
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ENTRY_KEYS))}")
            continue
        given = {key for key, item_value in item.items() if item_value not in (None, "")}
        if "docker_config" in given:
            if given - {"docker_config"}:
                errors.append(f"{where}: docker_config goes alone; registry, username, password and email come from it")
                continue
            found.extend(_from_docker_config(item["docker_config"], where, errors))
            continue
        missing = [key for key in ("registry", "username", "password") if not _text(item.get(key))]
        if missing:
            errors.append(f"{where}: needs registry, username and password (or docker_config alone); "
                          f"missing or not a string: {', '.join(missing)}")
            continue
        if item.get("email") is not None and not isinstance(item["email"], str):
            errors.append(f"{where}: email must be a string")
            continue
        found.append((item["registry"].strip(), _auth_entry(item["username"], item["password"], item.get("email"))))
    seen: dict[str, str] = {}
    for registry, _auth in found:
        host = registry_host(registry)
        if not host or any(char.isspace() for char in host):
            errors.append(f"{VARIABLE}: registry {json.dumps(registry)} is not a registry host such as registry.example.com:5000")
        elif host in seen:
            errors.append(f"{VARIABLE}: registry {json.dumps(registry)} is given twice"
                          + (f" (also as {json.dumps(seen[host])})" if seen[host] != registry else "")
                          + "; give one entry per registry")
        seen.setdefault(host, registry)
    if errors:
        raise PullSecretError(errors)
    return found


def pull_secrets(value: Any, daemonset_name: str) -> list[dict[str, str]]:
    """Per registry: the Secret's name, the registry and the docker config JSON it holds (a secret)."""
    found = parse(value)
    names = secret_names(daemonset_name, [registry for registry, _auth in found])
    return [{"name": name, "registry": registry,
             "dockerconfigjson": json.dumps({"auths": {registry: auth}}, sort_keys=True, separators=(",", ":"))}
            for name, (registry, auth) in zip(names, found)]


def public(secrets: list[dict[str, str]]) -> list[dict[str, str]]:
    """What may be shown of the Secrets: name and registry."""
    return [{"name": secret["name"], "registry": secret["registry"]} for secret in secrets]


def mask(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> tuple[dict | None, dict | None]:
    """Copies of a Secret before and after with every data/stringData value replaced.

    Equal values become ``(masked)`` on both sides; a value that changes (or appears or goes) is
    ``(masked)`` before and ``(masked, changed)`` after, so a diff and `changed` still tell the truth.
    """
    def data(obj, field):
        return dict((obj or {}).get(field) or {})

    masked_before = copy.deepcopy(dict(before)) if before is not None else None
    masked_after = copy.deepcopy(dict(after)) if after is not None else None
    for field in ("data", "stringData"):
        old, new = data(before, field), data(after, field)
        if masked_before is not None and field in masked_before:
            masked_before[field] = {key: MASK for key in old}
        if masked_after is not None and field in masked_after:
            masked_after[field] = {key: MASK if before is not None and key in old and old[key] == value else MASK_CHANGED
                                   for key, value in new.items()}
    for obj in (masked_before, masked_after):
        annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
        # kubectl apply keeps the whole object, data included, in this annotation
        if "kubectl.kubernetes.io/last-applied-configuration" in annotations:
            annotations["kubectl.kubernetes.io/last-applied-configuration"] = MASK
    return masked_before, masked_after
