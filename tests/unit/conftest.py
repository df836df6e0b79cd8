# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Make ``ansible_collections.kip.image_puller`` importable for plain ``pytest tests/unit``.

The unit tests import the collection by its full name, the way Ansible and
``ansible-test units`` load it.  ``ansible-test units`` runs from a copy under
``ansible_collections/kip/image_puller`` (tests/tools/ansible-test.sh), where that
already works.  A checkout anywhere else gets a throwaway directory holding
``ansible_collections/kip/image_puller`` -> checkout, put first on ``sys.path``;
``make venv`` also links the collection into the venv, but that link may point at
another checkout, so it is only trusted when it resolves to this one.
``kubernetes.core`` comes from site-packages (the pinned ``ansible`` package).
"""

from __future__ import annotations

import atexit
import importlib.util
import pathlib
import shutil
import sys
import tempfile

COLLECTION = "ansible_collections.kip.image_puller"
CHECKOUT = pathlib.Path(__file__).resolve().parents[2]


def _imported_from() -> pathlib.Path | None:
    """Return the directory the collection would be imported from, or None."""
    try:
        spec = importlib.util.find_spec(COLLECTION)
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(next(iter(spec.submodule_search_locations))).resolve()


def _make_importable() -> None:
    if _imported_from() == CHECKOUT:
        return
    if CHECKOUT.parts[-3:] == ("ansible_collections", "kip", "image_puller"):
        base = CHECKOUT.parents[2]
    else:
        base = pathlib.Path(tempfile.mkdtemp(prefix="kip-image-puller-pytest-"))
        atexit.register(shutil.rmtree, base, ignore_errors=True)
        link = base / "ansible_collections" / "kip" / "image_puller"
        link.parent.mkdir(parents=True)
        link.symlink_to(CHECKOUT, target_is_directory=True)
    sys.path.insert(0, str(base))
    importlib.invalidate_caches()
    for name in [name for name in sys.modules if name == COLLECTION or name.startswith(COLLECTION + ".")]:
        del sys.modules[name]
    found = _imported_from()
    if found != CHECKOUT:
        raise RuntimeError(f"cannot import {COLLECTION} from {CHECKOUT} (it resolves to {found})")


_make_importable()
