# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""The exceptions the helpers of this collection raise.

Helpers raise; only a module's main() turns the exception into fail_json, so
that a failure still returns what was learned before it (the object as
applied, the problems found, the summary). Callers decide by class and by
field (ApiError.status), never by the wording of a message.
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


class ApiError(ImagePullerError):
    """The API server refused a request: its HTTP status (None when there was no answer) and the reason it gave.

    Raised only by client.api_error, the one translator of the kubernetes client's exceptions.
    """

    def __init__(self, msg: str, *, status: int | None, reason: str | None = None, **result: Any) -> None:
        super().__init__(msg, **result)
        self.status = status
        self.reason = reason

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def forbidden(self) -> bool:
        return self.status in (401, 403)


class InvalidObjectError(ImagePullerError):
    """An object the user gave (or the cluster holds) breaks a rule of Kubernetes, for instance an unknown selector operator."""
