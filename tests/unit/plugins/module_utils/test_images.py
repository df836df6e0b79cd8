# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.kip.image_puller.plugins.module_utils._image_puller.images import (
    ImageListError,
    derive_names,
    parse_image_list,
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
        pytest.param("Web", 'image "Web" in image_puller_images: invalid image reference "Web": repository path '
                     'component "Web" must be lowercase', id="an entry without an equals sign is checked as a reference"),
        pytest.param("=nginx", 'entry "=nginx" in image_puller_images: the container name is empty',
                     id="an empty name is an error"),
        pytest.param("web=", 'image "web" in image_puller_images: the image reference is empty',
                     id="an empty image is an error"),
        pytest.param("web=a=b", "there is more than one '='", id="two equals signs in one entry are an error"),
        pytest.param("-web=nginx", "must be a DNS-1123 label", id="a name starting with a dash is an error"),
        pytest.param("<image>=<repository>/<image>:<tag>;",
                     'entry "<image>=<repository>/<image>:<tag>" in image_puller_images: holds the placeholder(s) '
                     "<image>, <repository>, <tag> of a documentation template",
                     id="a documentation template's placeholders are named, not taken for a bad name"),
        pytest.param(["registry.example/<team>/app:1"], "holds the placeholder(s) <team>",
                     id="a placeholder in a plain reference is named too"),
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
        pytest.param([{"name": "a", "image": "nginx"}, {"name": "", "image": "httpd"}],
                     'entry 2 {"image": "httpd", "name": ""} in image_puller_images: the container name is empty',
                     id="a mapping with an empty name is named by its position and content"),
        pytest.param([{"image": "Httpd"}], 'entry 1 {"image": "Httpd"} in image_puller_images: invalid image reference',
                     id="a mapping with only an invalid image is named by its position"),
        pytest.param([{"name": "web", "image": "nginx", "tag": "1"}], "unknown key(s) tag", id="an unknown key is an error"),
        pytest.param([42], "entry 1 in image_puller_images: expected an image reference", id="a number in the list is an error"),
        pytest.param({"web": "nginx"}, "must be a string", id="a mapping instead of a list is an error"),
    ],
)
def test_parse_rejects(value, message):
    with pytest.raises(ImageListError) as caught:
        parse_images(value, reserved=("copy-sleep",))
    assert message in str(caught.value)


def test_every_bad_entry_is_reported_at_once():
    with pytest.raises(ImageListError) as caught:
        parse_images("Bad=x;ok=nginx;Nothing;dup=a;dup=b;")
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


LONG = "a" * 70


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("nginx:1.27", [("nginx", "nginx:1.27")], id="a bare reference string is named after its repository"),
        pytest.param(["quay.io/eclipse/che-theia:next"], [("che-theia", "quay.io/eclipse/che-theia:next")],
                     id="a list item without '=' is a reference; the last path component names it"),
        pytest.param([{"image": "busybox:1.36"}], [("busybox", "busybox:1.36")], id="a mapping with only image"),
        pytest.param([{"name": None, "image": "busybox"}], [("busybox", "busybox")], id="a null name is derived too"),
        pytest.param("acr.example.io/da/canton-enterprise:2.7.0;acr.example.io/da/canton-enterprise:2.7.0-debug;",
                     [("canton-enterprise-2-7-0", "acr.example.io/da/canton-enterprise:2.7.0"),
                      ("canton-enterprise-2-7-0-debug", "acr.example.io/da/canton-enterprise:2.7.0-debug")],
                     id="the same repository twice: the tag makes each name unique"),
        pytest.param("localhost:5000/kip/sleep:v1", [("sleep", "localhost:5000/kip/sleep:v1")],
                     id="a registry host with a port is not part of the name"),
        pytest.param("localhost:5000/app", [("app", "localhost:5000/app")],
                     id="the port of a registry without a tag is not taken for a tag"),
        pytest.param(f"quay.io/x/app@{SHA}", [("app", f"quay.io/x/app@{SHA}")], id="a digest reference"),
        pytest.param(f"a/app@{SHA};b/app@sha256:{'b' * 64}",
                     [("app-aaaaaaaaaaaa", f"a/app@{SHA}"), ("app-bbbbbbbbbbbb", f"b/app@sha256:{'b' * 64}")],
                     id="digests make names unique with their first 12 digits"),
        pytest.param("a/app:1;b/app:1", [("app-1", "a/app:1"), ("app-1-2", "b/app:1")],
                     id="equal repository and tag: a numeric suffix in list order"),
        pytest.param("a/app;b/app", [("app", "a/app"), ("app-2", "b/app")],
                     id="no tag to tell them apart: a numeric suffix"),
        pytest.param("g/my__app.v2_x:Tag_1.0", [("my-app-v2-x", "g/my__app.v2_x:Tag_1.0")],
                     id="dots and underscores become one dash"),
        pytest.param(f"r.io/{LONG}:1", [("a" * 63, f"r.io/{LONG}:1")], id="a long path component is cut to 63"),
        pytest.param(f"r.io/{LONG}:1;q.io/{LONG}:1",
                     [("a" * 61 + "-1", f"r.io/{LONG}:1"), ("a" * 59 + "-1-2", f"q.io/{LONG}:1")],
                     id="cut names keep their tag and numeric suffix within 63"),
        pytest.param("web=nginx:1;httpd:2.4;nginx", [("web", "nginx:1"), ("httpd", "httpd:2.4"), ("nginx", "nginx")],
                     id="named and plain entries mix in the string form"),
        pytest.param("nginx=httpd;nginx:1.27", [("nginx", "httpd"), ("nginx-1-27", "nginx:1.27")],
                     id="a given name wins; the derived one takes the tag"),
        pytest.param("nginx:1.27;nginx=httpd", [("nginx-1-27", "nginx:1.27"), ("nginx", "httpd")],
                     id="a given name later in the list still wins"),
        pytest.param("nginx-1-27=a;nginx=b;nginx:1.27", [("nginx-1-27", "a"), ("nginx", "b"), ("nginx-1-27-2", "nginx:1.27")],
                     id="given names taken twice: the numeric suffix resolves it"),
        pytest.param("quay.io/x/copy-sleep:1", [("copy-sleep-1", "quay.io/x/copy-sleep:1")],
                     id="the init container's name is never derived"),
        pytest.param("quay.io/x/copy-sleep", [("copy-sleep-2", "quay.io/x/copy-sleep")],
                     id="the init container's name without a tag: a numeric suffix"),
    ],
)
def test_names_are_derived(value, expected):
    images = parse_images(value, reserved=("copy-sleep",))
    assert images == [{"name": n, "image": i} for n, i in expected]
    for item in images:
        assert len(item["name"]) <= 63 and DNS1123.fullmatch(item["name"]), item


DNS1123 = __import__("re").compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_derived_names_are_reported_and_deterministic():
    value = "web=nginx;busybox:1.36;quay.io/a/b:c"
    first = parse_image_list(value)
    assert first == parse_image_list(value)
    assert first[1] == ["busybox", "b"]


def test_derive_names_never_returns_a_taken_name():
    names = derive_names(["x/app:1", "y/app:1", "z/app:1"], taken={"app", "app-1", "app-1-2"})
    assert names == ["app-1-3", "app-1-4", "app-1-5"]
