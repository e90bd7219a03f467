"""Image names and references against distribution/reference's grammar."""

from __future__ import annotations

import pytest

from dockyard import reference
from dockyard.errors import UsageError

VALID_REFERENCES = [
    "busybox",
    "acme/api:1.0",
    "docker.io/library/python:3.13-slim",
    "localhost:5000/acme/api",
    "localhost:5000/acme/api:v2",
    "LOCALHOST/acme",  # the domain may have capitals; the path may not
    "[2001:db8::1]:5000/acme/api:1",
    "a.b/c__d/e--f/g.h_i:TAG_1.x-y",
    "acme/api@sha256:" + "a" * 64,
    "acme/api:1.0@sha256:" + "0" * 64,
    "x" * 255,
]
INVALID_REFERENCES = [
    "",
    "relaudit-app-",
    "-x",
    "acme/Api",  # a capital in the path (a capital first part is a registry host, as in Docker)
    "acme//api",
    "acme/api:",
    "acme/api:-tag",
    "acme/api:" + "t" * 129,
    "acme/api@sha256:xyz",
    "acme/api@",
    "a___b",
    "acme/api:1:2",
    "x" * 256,
    "acme /api",
    "acme/ap\u00ef",
]


@pytest.mark.parametrize("ref", VALID_REFERENCES)
def test_valid_references(ref: str) -> None:
    assert reference.is_reference(ref)
    assert reference.check_image_ref(ref, "IMAGE") == ref


@pytest.mark.parametrize("ref", INVALID_REFERENCES)
def test_invalid_references_are_one_clear_line(ref: str) -> None:
    assert not reference.is_reference(ref)
    with pytest.raises(UsageError) as caught:
        reference.check_image_ref(ref, "IMAGE")
    assert caught.value.message.startswith("IMAGE: ")
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("ref", ["28ee0d1f48cd", "sha256:" + "f" * 64, "f" * 64])
def test_image_ids_name_local_images(ref: str) -> None:
    assert reference.check_image_ref(ref, "IMAGE") == ref


def test_names_have_no_tag() -> None:
    assert reference.is_name("localhost:5000/acme/api")
    assert not reference.is_name("acme/api:1.0")
    with pytest.raises(UsageError, match="no tag or digest here"):
        reference.check_name("acme/api:1.0", "image")


@pytest.mark.parametrize(
    ("tag", "ok"), [("1.0", True), ("_x", True), (".x", False), ("-x", False), ("", False)]
)
def test_tags(tag: str, ok: bool) -> None:
    if ok:
        assert reference.check_tag(tag, "--tag") == tag
    else:
        with pytest.raises(UsageError, match="is not a valid tag"):
            reference.check_tag(tag, "--tag")
