# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from fractions import Fraction

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.quantity import (
    QuantityError,
    format_quantity,
    parse_quantity,
    quantity_suffix,
)

Mi = 2**20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(".05", Fraction(1, 20), id="a leading-dot decimal .05 is exactly one twentieth"),
        pytest.param("50m", Fraction(1, 20), id="50m is the same value as .05"),
        pytest.param("0.2", Fraction(1, 5), id="0.2 is exact, unlike the float"),
        pytest.param("1e3", 1000, id="1e3 is an exponent, a thousand"),
        pytest.param("1E3", 1000, id="1E3 is an exponent too"),
        pytest.param("1E", 10**18, id="a bare E is the exa suffix"),
        pytest.param("2e-3", Fraction(1, 500), id="a negative exponent gives a fraction"),
        pytest.param("20Mi", 20 * Mi, id="20Mi is twenty binary mebibytes"),
        pytest.param("1Gi", 2**30, id="1Gi is 2 to the 30"),
        pytest.param("1G", 10**9, id="1G is ten to the 9, less than 1Gi"),
        pytest.param("0.5Gi", 512 * Mi, id="half a Gi is 512Mi"),
        pytest.param("1.5k", 1500, id="1.5k is fifteen hundred"),
        pytest.param("+1", 1, id="an explicit plus sign is allowed"),
        pytest.param("-1", -1, id="a minus sign is allowed"),
        pytest.param("1.", 1, id="a trailing dot is allowed"),
        pytest.param("100n", Fraction(1, 10**7), id="nano units are kept exactly"),
        pytest.param("0.0000000001", Fraction(1, 10**9), id="values finer than a nano-unit round up to 1n as the API server does"),
        pytest.param(0.05, Fraction(1, 20), id="an unquoted YAML float 0.05 reads as the digits written"),
        pytest.param(3, 3, id="an unquoted YAML integer is a plain count"),
    ],
)
def test_parse_quantity_is_exact(text, expected):
    assert parse_quantity(text) == expected


def test_one_gi_is_more_than_one_g():
    assert parse_quantity("1Gi") > parse_quantity("1G")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="an empty string is not a quantity"),
        pytest.param("1 Mi", id="a space before the suffix is refused"),
        pytest.param("1mi", id="a lower-case binary suffix is refused"),
        pytest.param("1e", id="an exponent without digits is refused"),
        pytest.param("--1", id="two signs are refused"),
        pytest.param("abc", id="letters alone are refused"),
        pytest.param(".", id="a lone dot is refused"),
        pytest.param(True, id="a boolean is refused"),
        pytest.param(None, id="null is refused"),
    ],
)
def test_bad_quantity_raises_naming_the_value(text):
    with pytest.raises(QuantityError) as raised:
        parse_quantity(text, what='container "pull" limits.memory')
    assert 'container "pull" limits.memory' in str(raised.value)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize(
    ("value", "resource", "suffix", "expected"),
    [
        pytest.param(2000 * Mi, "limits.memory", "Mi", "2000Mi", id="memory prints in Mi, not as a rounded Gi"),
        pytest.param(2 * 2**30, "memory", "Gi", "2Gi", id="memory prints in the Gi the user wrote when whole"),
        pytest.param(512 * Mi, "memory", "Gi", "512Mi", id="memory falls back to Mi when Gi would be fractional"),
        pytest.param(10**9, "requests.memory", "G", "1G", id="decimal memory keeps the G the user wrote"),
        pytest.param(3 * 1024, "memory", "", "3Ki", id="memory that is no whole Mi prints in Ki"),
        pytest.param(1536, "memory", "", "1536", id="memory that is no whole Ki prints in bytes"),
        pytest.param(Fraction(3, 20), "requests.cpu", "", "150m", id="cpu prints in millicores"),
        pytest.param(Fraction(2), "cpu", "", "2000m", id="whole cores print in millicores too"),
        pytest.param(Fraction(1, 10**7), "cpu", "", "0.0000001", id="cpu finer than a millicore prints its exact decimal"),
        pytest.param(Fraction(20), "pods", "", "20", id="counts print as whole numbers"),
        pytest.param(Fraction(0), "limits.memory", "Mi", "0Mi", id="zero memory keeps the unit"),
    ],
)
def test_format_quantity(value, resource, suffix, expected):
    assert format_quantity(value, resource, suffix=suffix) == expected


@pytest.mark.parametrize(
    ("text", "suffix"),
    [
        pytest.param("20Mi", "Mi", id="the suffix of 20Mi is Mi"),
        pytest.param("1G", "G", id="the suffix of 1G is G"),
        pytest.param(".05", "", id="a plain number has no suffix"),
        pytest.param("1e3", "", id="an exponent is not a suffix"),
        pytest.param("nonsense", "", id="an unparsable value has no suffix"),
    ],
)
def test_quantity_suffix(text, suffix):
    assert quantity_suffix(text) == suffix


def test_round_trip_of_the_upstream_defaults():
    assert format_quantity(parse_quantity(".05"), "requests.cpu") == "50m"
    assert format_quantity(parse_quantity(".2"), "limits.cpu") == "200m"
    assert format_quantity(parse_quantity("10Mi"), "requests.memory", suffix="Mi") == "10Mi"
