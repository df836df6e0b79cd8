# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test builds each sanity/units virtual environment without pip and then
runs ``get-pip-<version>.py`` downloaded from ci-files.testing.ansible.com, a
host that is not reachable from every build machine.  tests/tools/ansible-test.sh
copies this file to ``~/.ansible/test/cache/get_pip_<version>.py`` (the path
ansible-test looks at before downloading).  It receives the same arguments as the
real script, e.g. ``--disable-pip-version-check pip==24.2 --no-setuptools
--no-wheel``; it installs the pip bundled with Python (``ensurepip``, no network)
and then lets that pip install the requested versions from the configured index.
"""
# kip.image_puller get-pip stand-in (this marker lets ansible-test.sh refresh the copy)

from __future__ import annotations

import subprocess
import sys

GET_PIP_ONLY_FLAGS = ("--no-setuptools", "--no-wheel")


def run(*args: str) -> None:
    """Run the current interpreter with args; exit with its status on failure."""
    rc = subprocess.call([sys.executable, *args])
    if rc:
        sys.exit(rc)


def main() -> None:
    args = sys.argv[1:]
    pip_args = [arg for arg in args if arg not in GET_PIP_ONLY_FLAGS]
    requested = {arg.split("==")[0].lower() for arg in pip_args if not arg.startswith("-")}

    run("-m", "ensurepip", "--default-pip")
    run("-m", "pip", "install", *pip_args)

    # ensurepip on Python < 3.12 also installs setuptools; get-pip honours --no-setuptools.
    unwanted = [name for flag, name in (("--no-setuptools", "setuptools"), ("--no-wheel", "wheel"))
                if flag in args and name not in requested]
    if unwanted:
        subprocess.call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *unwanted],
                        stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
