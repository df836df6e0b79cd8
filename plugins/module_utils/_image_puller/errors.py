# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The one exception the helpers of this collection raise.

Helpers raise; only a module's main() turns the exception into fail_json, so
that a failure still returns what was learned before it (the object as
applied, the problems found, the summary).
"""

from __future__ import annotations

from typing import Any


class ImagePullerError(Exception):
    """A failure with a message for the user and the partial module result."""

    def __init__(self, msg: str, **result: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.result = result

    def __str__(self) -> str:
        return self.msg
