# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import (
    ImageListError,
    parse_images,
    reference_problem,
    to_upstream_string,
)

SHA = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("web=nginx:1.27;", [("web", "nginx:1.27")], id="one upstream entry with a trailing semicolon"),
        pytest.param("web=nginx:1.27", [("web", "nginx:1.27")], id="the trailing semicolon is optional"),
        pytest.param("  b=busybox ; a=alpine:3 ;  ", [("b", "busybox"), ("a", "alpine:3")],
                     id="spaces around entries are trimmed and order is kept"),
        pytest.param("b=busybox;\na=alpine:3;\n", [("b", "busybox"), ("a", "alpine:3")],
                     id="a folded YAML block with newlines after each semicolon works"),
        pytest.param("b=busybox\na=alpine:3\n", [("b", "busybox"), ("a", "alpine:3")],
                     id="an AWX textarea with one entry per line and no semicolons works"),
        pytest.param("a=x;;b=y", [("a", "x"), ("b", "y")], id="an empty entry between semicolons is ignored"),
        pytest.param([{"name": "z", "image": "zed"}, {"name": "a", "image": "alpha"}], [("z", "zed"), ("a", "alpha")],
                     id="a list of name and image mappings keeps its order"),
        pytest.param(["web=nginx", {"name": "db", "image": "postgres:16"}], [("web", "nginx"), ("db", "postgres:16")],
                     id="a list may mix name=image strings and mappings"),
        pytest.param("canton-enterprise=acr.example.io/digitalasset/canton-enterprise:2.7.0-debug;",
                     [("canton-enterprise", "acr.example.io/digitalasset/canton-enterprise:2.7.0-debug")],
                     id="the seed's Canton example parses"),
        pytest.param("a" * 63 + "=x", [("a" * 63, "x")], id="a 63 character name is allowed"),
    ],
)
def test_parse_accepts(value, expected):
    assert parse_images(value) == [{"name": n, "image": i} for n, i in expected]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("Canton=canton:1", 'image "Canton" in image_puller_images: container name must be a DNS-1123 label '
                     "(lowercase letters, digits, '-'), got \"Canton\"", id="an uppercase name is named in the error"),
        pytest.param("web", 'entry "web" in image_puller_images: expected name=image, there is no \'=\'',
                     id="an entry without an equals sign is an error"),
        pytest.param("=nginx", 'entry "=nginx" in image_puller_images: the container name is empty',
                     id="an empty name is an error"),
        pytest.param("web=", 'image "web" in image_puller_images: the image reference is empty',
                     id="an empty image is an error"),
        pytest.param("web=a=b", "there is more than one '='", id="two equals signs in one entry are an error"),
        pytest.param("-web=nginx", "must be a DNS-1123 label", id="a name starting with a dash is an error"),
        pytest.param("web_1=nginx", "must be a DNS-1123 label", id="an underscore in a name is an error"),
        pytest.param("a" * 64 + "=x", "at most 63 characters, got 64", id="a 64 character name is an error"),
        pytest.param("web=nginx;web=httpd", 'image "web" in image_puller_images: duplicate container name (entries 1 and 2)',
                     id="a duplicate name is an error, not a silent overwrite"),
        pytest.param("copy-sleep=busybox", "used by the puller's own init container",
                     id="the init container's name is reserved"),
        pytest.param("web=nginx:1.27 beta", "must not contain whitespace", id="a space inside a reference is an error"),
        pytest.param("web=Nginx", 'invalid image reference "Nginx": repository path component "Nginx" must be lowercase',
                     id="an uppercase repository is an error"),
        pytest.param("", "image_puller_images is empty", id="an empty list is an error"),
        pytest.param(" ;\n ", "image_puller_images is empty", id="only separators is an empty list"),
        pytest.param([{"name": "web"}], 'image "web" in image_puller_images: the image reference is empty',
                     id="a mapping without image is an error"),
        pytest.param([{"name": "a", "image": "nginx"}, {"image": "httpd"}],
                     'entry 2 {"image": "httpd"} in image_puller_images: the container name is empty',
                     id="a mapping without name is named by its position and content"),
        pytest.param([{"name": "web", "image": "nginx", "tag": "1"}], "unknown key(s) tag", id="an unknown key is an error"),
        pytest.param([42], "entry 1 in image_puller_images: expected a mapping", id="a number in the list is an error"),
        pytest.param({"web": "nginx"}, "must be a string", id="a mapping instead of a list is an error"),
    ],
)
def test_parse_rejects(value, message):
    with pytest.raises(ImageListError) as caught:
        parse_images(value, reserved=("copy-sleep",))
    assert message in str(caught.value)


def test_every_bad_entry_is_reported_at_once():
    with pytest.raises(ImageListError) as caught:
        parse_images("Bad=x;ok=nginx;nothing;dup=a;dup=b;")
    assert len(caught.value.errors) == 3
    assert str(caught.value).startswith("3 problems:\n- ")


def test_an_empty_list_is_allowed_when_asked():
    assert parse_images("", allow_empty=True) == []


def test_the_variable_name_in_messages_can_be_changed():
    with pytest.raises(ImageListError, match='image "X" in my_images'):
        parse_images("X=y", variable="my_images")


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("busybox", id="a bare name"),
        pytest.param("library/busybox:1.36", id="a path with a tag"),
        pytest.param("quay.io/eclipse/kubernetes-image-puller:1.1.2", id="a registry host with a path and tag"),
        pytest.param("localhost:5000/kip/sleep", id="localhost with a port and no tag"),
        pytest.param("127.0.0.1:5000/a/b:c", id="an IPv4 registry with a port"),
        pytest.param("[::1]:5000/img:v1", id="an IPv6 registry in brackets"),
        pytest.param("Registry.Example.COM/app", id="uppercase is allowed in the registry host"),
        pytest.param("ghcr.io/a/b__c/d-e.f_g:tag_1.2-x", id="all path separators"),
        pytest.param("a/b---c", id="several dashes as one separator"),
        pytest.param(f"nginx@{SHA}", id="a digest without a tag"),
        pytest.param(f"nginx:1.27@{SHA}", id="a tag and a digest"),
        pytest.param("x:" + "t" * 128, id="a 128 character tag"),
        pytest.param("foo@sha512:" + "0" * 128, id="a sha512 digest"),
        pytest.param("foo@multihash+base58:" + "0" * 32, id="an unknown digest algorithm with 32 hex digits"),
    ],
)
def test_valid_references(reference):
    assert reference_problem(reference) is None


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        pytest.param("", "it is empty", id="an empty reference"),
        pytest.param("nginx:", "tag \"\"", id="an empty tag"),
        pytest.param("nginx:-x", "not starting with '.' or '-'", id="a tag starting with a dash"),
        pytest.param("x:" + "t" * 129, "1 to 128", id="a 129 character tag"),
        pytest.param(":1.0", "repository name is empty", id="a tag with no name"),
        pytest.param("quay.io//x", "empty component", id="a double slash"),
        pytest.param("quay.io/x/", "empty component", id="a trailing slash"),
        pytest.param("a/B", 'component "B" must be lowercase', id="uppercase in the path after the host"),
        pytest.param("a/b_-c", "joined by", id="an underscore followed by a dash"),
        pytest.param("a/b...c", "joined by", id="three dots as a separator"),
        pytest.param("nginx@sha256:abc", "at least 32", id="a short digest"),
        pytest.param("nginx@sha256:" + "a" * 63, "sha256 digest has 64 hex digits, got 63", id="a sha256 digest of the wrong length"),
        pytest.param("nginx@md5", "<algorithm>:<hex", id="a digest without a colon"),
        pytest.param(f"a@{SHA}@{SHA}", "more than one '@'", id="two digests"),
        pytest.param("host:port/x", "must be lowercase letters", id="a non numeric port"),
        pytest.param("a/" + "b" * 254, "longer than 255", id="a name longer than 255 characters"),
    ],
)
def test_invalid_references(reference, reason):
    problem = reference_problem(reference)
    assert problem is not None and reason in problem


def test_upstream_string_round_trips():
    images = parse_images("b=busybox;a=alpine:3;")
    assert to_upstream_string(images) == "b=busybox;a=alpine:3;"
    assert parse_images(to_upstream_string(images)) == images
