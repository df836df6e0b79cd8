# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PRIVATE to kip.image_puller: not a public API, may change without notice.

"""Kubernetes resource quantities, parsed and printed exactly.

Quantities are held as fractions.Fraction: a float cannot hold 0.05 or 0.1
exactly, and quota arithmetic multiplied by thousands of nodes must agree with
the API server to the last byte and millicore. Pure: imports nothing of the
cluster.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

__all__ = ["QuantityError", "parse_quantity", "quantity_suffix", "format_quantity", "resource_family"]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 10**3), "": Fraction(1),
    "k": Fraction(10**3), "M": Fraction(10**6), "G": Fraction(10**9), "T": Fraction(10**12),
    "P": Fraction(10**15), "E": Fraction(10**18),
}
# <sign><digits[.digits] | .digits><Ki..Ei | e<exp> | n..E>, as apimachinery's resource.ParseQuantity reads it.
# "1E" is exa while "1E3" is an exponent; the alternation order below keeps that apart.
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exp>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]?))"
)
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity."""


def _match(value: object, what: str):
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise QuantityError(f"{what}: expected a Kubernetes quantity such as 50m, 0.5, 20Mi or 1Gi, got {value!r}")
    # YAML hands over unquoted numbers (cpu: .05) as int/float; repr gives back the digits the user wrote.
    text = value if isinstance(value, str) else repr(value)
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise QuantityError(
            f"{what}: {value!r} is not a Kubernetes quantity (a number with an optional suffix: "
            "m, k, M, G, T, Ki, Mi, Gi, Ti or an exponent like 1e3; no spaces)"
        )
    return match


def parse_quantity(value: object, *, what: str = "quantity") -> Fraction:
    """The exact value of a quantity: '.05' and '50m' are both Fraction(1, 20).

    Like the API server, values finer than one nano-unit are rounded up to it.
    `what` names the field in the error message, e.g. 'container "pull" limits.memory'.
    """
    match = _match(value, what)
    number = Fraction(match["number"] if not match["number"].endswith(".") else match["number"][:-1])
    if match["binary"]:
        number *= _BINARY[match["binary"]]
    elif match["exp"] is not None:
        exponent = int(match["exp"])
        if abs(exponent) > 64:
            raise QuantityError(f"{what}: {value!r} has an exponent out of range")
        number *= Fraction(10) ** exponent
    else:
        number *= _DECIMAL[match["decimal"] or ""]
    if match["sign"] == "-":
        number = -number
    if number.denominator != 1 and (number / _NANO).denominator != 1:
        number = Fraction(math.ceil(number / _NANO)) * _NANO
    return number


def quantity_suffix(value: object) -> str:
    """The suffix a quantity was written with ('Mi' for '20Mi', '' for '.05' or 1e3)."""
    try:
        match = _match(value, "quantity")
    except QuantityError:
        return ""
    return match["binary"] or match["decimal"] or ""


def resource_family(resource: str) -> str:
    """'cpu', 'bytes' or 'count': how a resource name (as a quota spells it) is printed."""
    name = resource.split(".", 1)[1] if resource.startswith(("requests.", "limits.")) else resource
    if name == "cpu":
        return "cpu"
    if name in ("memory", "ephemeral-storage", "storage") or name.startswith("hugepages-"):
        return "bytes"
    return "count"


def _decimal_text(value: Fraction) -> str:
    """A fraction with a finite decimal expansion as digits, else as p/q."""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for places in range(0, 10):
        scaled = value * 10**places
        if scaled.denominator == 1:
            whole, frac = divmod(int(scaled), 10**places)
            return f"{sign}{whole}" + (f".{frac:0{places}d}" if places else "")
    return f"{sign}{value.numerator}/{value.denominator}"


def format_quantity(value: Fraction | int, resource: str = "", *, suffix: str = "") -> str:
    """A quantity for a message, exact and in the unit a reader expects.

    cpu in millicores ('150m'); bytes in `suffix` (the one the user wrote) when the
    value is a whole number of it, else Mi, Ki or plain bytes; counts as numbers.
    """
    value = Fraction(value)
    family = resource_family(resource)
    if family == "cpu":
        milli = value * 1000
        if milli.denominator == 1:
            return f"{int(milli)}m"
        return _decimal_text(value)
    if family == "bytes":
        candidates = []
        if suffix in _BINARY:
            candidates.append((suffix, Fraction(_BINARY[suffix])))
        elif suffix in _DECIMAL and suffix not in ("", "m", "u", "n"):
            candidates.append((suffix, _DECIMAL[suffix]))
        candidates += [("Mi", Fraction(_BINARY["Mi"])), ("Ki", Fraction(_BINARY["Ki"]))]
        if value != 0:
            for name, factor in candidates:
                scaled = value / factor
                if scaled.denominator == 1:
                    return f"{int(scaled)}{name}"
        elif candidates and suffix:
            return f"0{candidates[0][0]}"
        return _decimal_text(value)
    return _decimal_text(value)
