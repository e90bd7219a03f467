"""Image names and references, checked against the grammar of distribution/reference (the one Docker,
Compose and every registry use), so a bad name is one clear line before any work, not an HTTP 400.

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [domain "/"] remote-name
    domain           := host [":" port-number]
    host             := domain-name | "[" IPv6address "]"
    domain-name      := domain-component ["." domain-component]*
    domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    remote-name      := path-component ["/" path-component]*
    path-component   := alpha-numeric [separator alpha-numeric]*
    alpha-numeric    := /[a-z0-9]+/
    separator        := /[_.]|__|[-]+/
    tag              := /[\\w][\\w.-]{0,127}/
    digest           := algorithm ":" hex (32 or more)

A name is at most 255 characters. An image id (64 hex digits, with or without `sha256:`, or a prefix
of one) names a local image too, and is accepted where a local image is meant.
"""

from __future__ import annotations

import re

from dockyard.errors import UsageError

__all__ = ["NAME_MAX", "check_image_ref", "check_name", "check_tag", "is_name", "is_reference"]

NAME_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALPHANUMERIC + rf"(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_REMOTE_NAME = _PATH_COMPONENT + rf"(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + rf"(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_NAME}|{_IPV6})"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN_AND_PORT}/)?{_REMOTE_NAME}"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_NAME_RE = re.compile(_NAME, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_REFERENCE_RE = re.compile(rf"({_NAME})(?::({_TAG}))?(?:@({_DIGEST}))?", re.ASCII)
_IMAGE_ID_RE = re.compile(r"(?:sha256:)?[a-f0-9]{12,64}", re.ASCII)


def is_name(text: str) -> bool:
    """Whether `text` is an image name (no tag, no digest)."""
    return len(text) <= NAME_MAX and _NAME_RE.fullmatch(text) is not None


def is_reference(text: str) -> bool:
    """Whether `text` is a reference: a name with an optional tag and digest."""
    match = _REFERENCE_RE.fullmatch(text)
    return match is not None and len(match.group(1)) <= NAME_MAX


def _why_not_name(text: str) -> str:
    if len(text) > NAME_MAX:
        return f"longer than {NAME_MAX} characters"
    if text != text.lower() and _NAME_RE.fullmatch(text.lower()):
        return "image names are lowercase"
    if text[:1] in "-._" or text[-1:] in "-._/":
        return "each part of a name starts and ends with a letter or digit"
    if "//" in text:
        return "an empty part between slashes"
    return "allowed are lowercase letters, digits and single . _ __ or - between them, / between parts"


def check_name(text: str, what: str, *, error: type[UsageError] = UsageError) -> str:
    """`text` when it is an image name; else `error` naming `what` and the rule it breaks."""
    if is_name(text):
        return text
    if is_reference(text):
        raise error(f"{what}: {text!r} is not a valid image name: no tag or digest here (tags come from "
                    "the version and git)")  # fmt: skip
    raise error(f"{what}: {text!r} is not a valid image name: {_why_not_name(text)}")


def check_tag(text: str, what: str) -> str:
    if _TAG_RE.fullmatch(text):
        return text
    raise UsageError(
        f"{what}: {text!r} is not a valid tag: up to 128 letters, digits, _ . or -, not starting with . or -"
    )


def check_image_ref(text: str, what: str) -> str:
    """`text` when it names an image (a reference, or a local image id); else one clear UsageError."""
    if _IMAGE_ID_RE.fullmatch(text) or is_reference(text):
        return text
    name, _, rest = text.partition("@")
    repository, colon, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    if colon and not _TAG_RE.fullmatch(tag):
        return check_tag(tag, what)
    if rest and not re.fullmatch(_DIGEST, rest, re.ASCII):
        raise UsageError(f"{what}: {text!r} has an invalid digest {rest!r} (expected sha256:<hex>)")
    raise UsageError(f"{what}: {text!r} is not a valid image reference: {_why_not_name(repository)}")
