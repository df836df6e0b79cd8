# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to the kip.image_puller collection: not a public API, may change without notice.
#
# Per-architecture images: the one place that decides which DaemonSets the role makes. Pure.
"""Split the image list into one DaemonSet per architecture, when an entry has an ``arch`` map."""

from __future__ import annotations

import difflib

# The node label the kubelet sets to its Go GOARCH (runtime.GOARCH).
ARCH_LABEL = "kubernetes.io/arch"
# Go's GOARCH values for Linux, the values the kubelet can put into ARCH_LABEL.
ARCHITECTURES = ("386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle",
                 "ppc64", "ppc64le", "riscv64", "s390x")
# Names of the same architectures in other systems (uname -m, Debian), for the error message.
ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "x64": "amd64", "aarch64": "arm64", "armv8": "arm64",
           "armhf": "arm", "armv7": "arm", "armv7l": "arm", "i386": "386", "i686": "386", "x86": "386",
           "ppc64el": "ppc64le", "powerpc64le": "ppc64le", "riscv": "riscv64"}
# The pod label that tells the per-architecture DaemonSets of one instance apart (part of their selector).
POD_ARCH_LABEL = "image-puller.kip/arch"
# Kubernetes object names the role derives must stay DNS-1123 labels.
NAME_MAX = 63


def arch_problem(key) -> str | None:
    """Why ``key`` is not a value of the kubernetes.io/arch node label, or None."""
    if not isinstance(key, str):
        return f"architecture {key!r} must be a string such as amd64"
    if key in ARCHITECTURES:
        return None
    hint = ALIASES.get(key.strip().lower())
    if hint is None:
        close = difflib.get_close_matches(key.strip().lower(), ARCHITECTURES, n=1, cutoff=0.6)
        hint = close[0] if close else None
    known = ", ".join(ARCHITECTURES)
    return (f"unknown architecture \"{key}\"" + (f" (did you mean {hint}?)" if hint else "")
            + f"; architectures are values of the node label {ARCH_LABEL}: {known}")


def daemonset_name(base: str, arch: str) -> str:
    """The name of the DaemonSet for one architecture."""
    return f"{base}-{arch}"


def architectures(images: list[dict]) -> list[str]:
    """Every architecture an entry's arch map names, sorted; empty when no entry has one."""
    return sorted({arch for item in images for arch in item.get("arch") or {}})


def image_for(item: dict, arch: str | None) -> str | None:
    """The image of one entry on an architecture (None: a single DaemonSet), or None when it has none there."""
    if arch is not None and arch in (item.get("arch") or {}):
        return item["arch"][arch]
    return item.get("image")


def daemonsets(images: list[dict], *, name: str, selector: dict, object_labels: dict, node_selector: dict) -> list[dict]:
    """The DaemonSets to render: what each is called, selects and runs.

    Without an arch map in ``images``: one, exactly as the settings say (name, selector, labels, node selector).
    With one: one per architecture any arch map names, called ``<name>-<arch>``, whose pods carry
    POD_ARCH_LABEL (also in its selector, so the DaemonSets' pods never overlap) and select
    kubernetes.io/arch besides ``node_selector``. Each runs the entries without an arch map, and every
    entry with one that has an image for its architecture (its arch map's, else its ``image``); the others are
    listed in ``skipped``.
    """
    arches = architectures(images)
    if not arches:
        return [{"name": name, "arch": None, "selector": dict(selector), "labels": dict(object_labels),
                 "node_selector": dict(node_selector),
                 "images": [{"name": item["name"], "image": item["image"]} for item in images], "skipped": []}]
    result = []
    for arch in arches:
        own = {POD_ARCH_LABEL: arch}
        chosen = [{"name": item["name"], "image": image_for(item, arch)} for item in images]
        result.append({
            "name": daemonset_name(name, arch), "arch": arch,
            "selector": {**selector, **own}, "labels": {**object_labels, **own},
            "node_selector": {**node_selector, ARCH_LABEL: arch},
            "images": [item for item in chosen if item["image"]],
            "skipped": [item["name"] for item in chosen if not item["image"]],
        })
    return result


def problems(images: list[dict], *, name: str, node_selector: dict) -> list[str]:
    """What stops the per-architecture split: a derived name too long, a node selector that already picks one."""
    arches = architectures(images)
    if not arches:
        return []
    found = []
    if ARCH_LABEL in (node_selector or {}):
        found.append(f"image_puller_node_selector sets {ARCH_LABEL} ({node_selector[ARCH_LABEL]!r}), but entries of "
                     "image_puller_images have an arch map, which makes the role select each architecture itself: "
                     f"remove {ARCH_LABEL} from image_puller_node_selector")
    too_long = [daemonset_name(name, arch) for arch in arches if len(daemonset_name(name, arch)) > NAME_MAX]
    if too_long:
        longest = max(len(arch) for arch in arches)
        found.append(f"image_puller_daemonset_name: the DaemonSets per architecture would be called "
                     f"{', '.join(too_long)}, longer than {NAME_MAX} characters; use a name of at most "
                     f"{NAME_MAX - longest - 1} characters")
    return found


def describe(sets: list[dict]) -> list[str]:
    """Lines for the validate output: each DaemonSet of the split and what it leaves out."""
    if len(sets) == 1 and sets[0]["arch"] is None:
        return []
    lines = ["per-architecture DaemonSets (nodes of other architectures get no pod): " + "; ".join(
        f"{item['name']} ({ARCH_LABEL}={item['arch']}): " + ", ".join(f"{i['name']}={i['image']}" for i in item["images"])
        for item in sets)]
    for item in sets:
        if item["skipped"]:
            lines.append(f"skipped on {item['arch']} (no {item['arch']} image and no image to fall back to): "
                         + ", ".join(item["skipped"]))
    return lines
