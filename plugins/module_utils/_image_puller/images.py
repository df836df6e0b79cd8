# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to the kip.image_puller collection: not a public API, may change without notice.
#
# The one meaning of the image list (upstream IMAGES). Pure: no cluster, no Ansible imports.
"""Parse and validate the list of images to cache."""

from __future__ import annotations

import json
import re

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.arch import arch_problem

# Kubernetes container names: RFC 1123 label (k8s.io/apimachinery validation.IsDNS1123Label).
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_LABEL_MAX = 63

# The distribution reference grammar (github.com/distribution/reference, regexp.go):
#   reference := name [ ":" tag ] [ "@" digest ]
#   name      := [domain "/"] path-component ["/" path-component]*
#   domain    := host [":" port]      host := domain-name | "[" IPv6 "]"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
DOMAIN = re.compile(rf"(?:{_DOMAIN_NAME}|{_IPV6})(?::[0-9]+)?")
PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
# go-digest checks the length of the encoded part for the algorithms it knows.
DIGEST_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
NAME_TOTAL_LENGTH_MAX = 255

# Separators of the string form: upstream uses ";"; a newline is accepted too, because an
# AWX survey textarea gives one entry per line.
_SEPARATORS = re.compile(r"[;\n]")

VARIABLE = "image_puller_images"


# A documentation template's slot, as in "<image>=<repository>/<image>:<tag>".
PLACEHOLDER = re.compile(r"<[^<>=;\s]*>")


class ImageListError(ValueError):
    """One or more entries of the image list are invalid; ``errors`` holds one message per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors) if len(self.errors) < 2 else
                         f"{len(self.errors)} problems:\n- " + "\n- ".join(self.errors))


def reference_problem(reference: str) -> str | None:
    """Return why ``reference`` is not a valid image reference, or None when it is."""
    if not reference:
        return "it is empty"
    if reference != reference.strip() or any(c.isspace() for c in reference):
        return "it must not contain whitespace"
    name, _at, digest = reference.partition("@")
    if digest:
        if "@" in digest:
            return "it contains more than one '@'"
        if not DIGEST.fullmatch(digest):
            return f"digest \"{digest}\" must be <algorithm>:<hex, at least 32 digits>"
        algorithm, _colon, encoded = digest.partition(":")
        expected = DIGEST_HEX_LENGTH.get(algorithm)
        if expected and len(encoded) != expected:
            return f"a {algorithm} digest has {expected} hex digits, got {len(encoded)}"
    tag = None
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not TAG.fullmatch(tag):
            return (f"tag \"{tag}\" must be 1 to 128 letters, digits, '_', '.' or '-', "
                    "not starting with '.' or '-'")
    if not name:
        return "the repository name is empty"
    if len(name) > NAME_TOTAL_LENGTH_MAX:
        return f"the repository name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
    components = name.split("/")
    if len(components) > 1 and DOMAIN.fullmatch(components[0]):
        components = components[1:]
    for component in components:
        if not component:
            return "the repository path has an empty component (\"//\" or a leading/trailing \"/\")"
        if not PATH_COMPONENT.fullmatch(component):
            if component.lower() != component and PATH_COMPONENT.fullmatch(component.lower()):
                return f"repository path component \"{component}\" must be lowercase"
            return (f"repository path component \"{component}\" must be lowercase letters and digits, "
                    "joined by '.', '_', '__' or '-'")
    return None


def name_problem(name: str) -> str | None:
    """Return why ``name`` cannot be a container name, or None when it can."""
    if len(name) > DNS1123_LABEL_MAX:
        return f"container name must be at most {DNS1123_LABEL_MAX} characters, got {len(name)}"
    if not DNS1123_LABEL.fullmatch(name):
        return ("container name must be a DNS-1123 label (lowercase letters, digits, '-'), "
                f"got \"{name}\"")
    return None


def _entries_from_string(text: str, variable: str, errors: list[str]) -> list[tuple[str | None, str, str]]:
    """Split the string form into (name, image, label) triples; label names the entry in errors.

    An entry with '=' is ``name=image``; an entry without '=' is a plain image reference, whose
    name is derived (name None).
    """
    entries: list[tuple[str | None, str, str]] = []
    for raw in _SEPARATORS.split(text):
        entry = raw.strip()
        if not entry:
            continue  # trailing ';', blank lines
        if "=" not in entry:
            entries.append((None, entry, f"image \"{entry}\""))
            continue
        name, _eq, image = entry.partition("=")
        name, image = name.strip(), image.strip()
        if "=" in image:
            errors.append(f"entry \"{entry}\" in {variable}: expected name=image or an image reference, "
                          "there is more than one '='")
            continue
        entries.append((name, image, f"entry \"{entry}\""))
    return entries


def _arch_map(value, where: str, errors: list[str]) -> dict[str, str] | None:
    """An entry's arch map checked: architecture -> image reference (its references are checked with the others)."""
    if not isinstance(value, dict) or not value:
        errors.append(f"{where}: arch must map each architecture (kubernetes.io/arch, such as amd64) to an image "
                      f"reference, got {json.dumps(value) if not isinstance(value, dict) else '{}'}")
        return None
    ok = True
    for key, image in value.items():
        problem = arch_problem(key)
        if problem:
            errors.append(f"{where}: {problem}")
            ok = False
        elif not isinstance(image, str) or not image.strip():
            errors.append(f"{where}: arch {key} must name an image reference, got {image!r}")
            ok = False
    return {key: value[key].strip() for key in sorted(value)} if ok else None


def _entries_from_list(items: list, variable: str, errors: list[str]) -> list[tuple]:
    entries: list[tuple] = []
    for position, item in enumerate(items, start=1):
        if isinstance(item, str):
            entries.extend(_entries_from_string(item, variable, errors))
            continue
        if not isinstance(item, dict):
            errors.append(f"entry {position} in {variable}: expected an image reference, a \"name=image\" string "
                          f"or a mapping with image (and name), got {type(item).__name__}")
            continue
        unknown = sorted(str(k) for k in item if k not in ("name", "image", "arch"))
        if unknown:
            errors.append(f"entry {position} in {variable}: unknown key(s) {', '.join(unknown)}; "
                          "only name, image and arch are allowed")
            continue
        name, image = item.get("name"), item.get("image")
        bad = [k for k, v in (("name", name), ("image", image)) if v is not None and not isinstance(v, str)]
        if bad:
            errors.append(f"entry {position} in {variable}: {' and '.join(bad)} must be a string")
            continue
        label = f"entry {position} {json.dumps(item, sort_keys=True)}"
        if "arch" in item:
            arch = _arch_map(item["arch"], f"{label} in {variable}", errors)
            if arch is None:
                continue
            entries.append((None if name is None else name.strip(), (image or "").strip(), label, arch))
            continue
        entries.append((None if name is None else name.strip(), (image or "").strip(), label))
    return entries


def _label_text(text: str) -> str:
    """``text`` as DNS-1123 label characters: lowercase, runs of anything else become one '-'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _fit(base: str, suffix: str = "") -> str:
    """``base`` cut so that ``base + suffix`` is at most 63 characters, without a dangling '-'."""
    return base[:DNS1123_LABEL_MAX - len(suffix)].rstrip("-") + suffix


# How much of a tag or digest goes into a derived name that needs it to be unique.
QUALIFIER_MAX = 30
DIGEST_QUALIFIER_LENGTH = 12


def _name_parts(reference: str) -> tuple[str, str]:
    """The derived name's base (the repository's last path component) and its qualifier (tag or digest)."""
    name, _at, digest = reference.partition("@")
    tag = ""
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
    base = _label_text(name.rsplit("/", 1)[-1]) or "image"
    qualifier = _label_text(tag) or _label_text(digest.partition(":")[2][:DIGEST_QUALIFIER_LENGTH])
    return base, qualifier[:QUALIFIER_MAX].strip("-")


def derive_names(references: list[str], taken=()) -> list[str]:
    """A container name per reference: valid, unique, not in ``taken``, the same for the same input.

    The repository's last path component (``quay.io/org/canton:2.7`` -> ``canton``); where that
    is not unique among the references or is taken, the tag (or the first digest digits) is
    added (``canton-2-7``); what still collides gets ``-2``, ``-3``, ... in list order. Names are
    cut to 63 characters.
    """
    parts = [_name_parts(reference) for reference in references]
    bases = [base for base, _qualifier in parts]
    used = set(taken)
    names = []
    for base, qualifier in parts:
        suffix = ""
        if (bases.count(base) > 1 or _fit(base) in used) and qualifier:
            suffix = "-" + qualifier
        name, number = _fit(base, suffix), 2
        while name in used:
            name = _fit(base, f"{suffix}-{number}")
            number += 1
        used.add(name)
        names.append(name)
    return names


def parse_image_list(value, *, variable: str = VARIABLE, reserved: tuple[str, ...] | list[str] = (),
                     allow_empty: bool = False) -> tuple[list[dict[str, str]], list[str]]:
    """Like :func:`parse_images`, and the names that were derived (for plain references), in order."""
    errors: list[str] = []
    if value is None:
        value = ""
    if isinstance(value, str):
        entries = _entries_from_string(value, variable, errors)
    elif isinstance(value, (list, tuple)):
        entries = _entries_from_list(list(value), variable, errors)
    else:
        raise ImageListError([f"{variable} must be a string \"name=image;name=image;\" (an entry without '=' is "
                              "an image reference) or a list of references, name=image strings or "
                              f"{{name, image}} mappings, got {type(value).__name__}"])

    valid: list[tuple[str | None, str, dict | None]] = []
    first_position: dict[str, int] = {}
    for position, (name, image, entry, *more) in enumerate(entries, start=1):
        arch = more[0] if more else None
        shown = " ".join([f"{name or ''}={image}", *(str(ref) for ref in (arch or {}).values())])
        placeholders = sorted(set(PLACEHOLDER.findall(shown)))
        if placeholders:
            errors.append(f"{entry} in {variable}: holds the placeholder(s) {', '.join(placeholders)} of a documentation "
                          "template; put the real container name and image reference in their place")
            continue
        if name is not None and not name:
            errors.append(f"{entry} in {variable}: the container name is empty")
            continue
        label = f"image \"{name}\" in {variable}" if name else f"{entry} in {variable}"
        if not image and not arch:
            errors.append(f"{label}: the image reference is empty")
            continue
        if name is not None:
            problem = name_problem(name)
            if problem:
                errors.append(f"{label}: {problem}")
                continue
            if name in reserved:
                errors.append(f"{label}: container name \"{name}\" is used by the puller's own init container; "
                              "choose another name")
                continue
            if name in first_position:
                errors.append(f"{label}: duplicate container name (entries {first_position[name]} and {position}); "
                              "each name must be unique")
                continue
            first_position[name] = position
        problems = [(ref, reference_problem(ref)) for ref in ([image] if image else []) + list((arch or {}).values())]
        problems = [(ref, problem) for ref, problem in problems if problem]
        for ref, problem in problems:
            errors.append(f"{label}: invalid image reference \"{ref}\": {problem}")
        if not problems:
            valid.append((name, image, arch))

    if not entries and not errors and not allow_empty:
        errors.append(f"{variable} is empty: give at least one image reference or name=image entry")
    if errors:
        raise ImageListError(errors)
    # An entry with an arch map and no image is named after the image of its first architecture.
    plain = [image or next(iter(arch.values())) for name, image, arch in valid if name is None]
    derived = iter(derive_names(plain, taken=set(reserved) | set(first_position)))
    images = []
    for name, image, arch in valid:
        item = {"name": name if name is not None else next(derived)}
        if image:
            item["image"] = image
        if arch:
            item["arch"] = arch
        images.append(item)
    derived_list = [item["name"] for (name, _image, _arch), item in zip(valid, images) if name is None]
    return images, derived_list


def parse_images(value, *, variable: str = VARIABLE, reserved: tuple[str, ...] | list[str] = (),
                 allow_empty: bool = False) -> list[dict[str, str]]:
    """Return the images as an ordered list of ``{"name", "image"}``.

    ``value`` is the upstream string (``name=image;name=image;``, where an entry without '=' is
    a plain image reference) or a list of image references, ``name=image`` strings and
    ``{name, image}`` mappings (``name`` may be left out). A reference without a name gets one
    from :func:`derive_names`. Every problem is collected and raised together as
    :class:`ImageListError`; nothing is skipped silently. ``reserved`` are container names the
    pod already uses (the init container).
    """
    return parse_image_list(value, variable=variable, reserved=reserved, allow_empty=allow_empty)[0]


def to_upstream_string(images: list[dict[str, str]]) -> str:
    """The upstream IMAGES form of a validated list: ``name=image;name=image;`` (entries without an image, only an
    arch map, have no upstream form and are left out)."""
    return "".join(f"{item['name']}={item['image']};" for item in images if item.get("image"))
