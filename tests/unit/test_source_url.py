"""The OCI `source` label comes from the `origin` remote, never with its credentials."""

from __future__ import annotations

import pytest

from dockyard import git


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:acme/api.git", "https://github.com/acme/api"),
        ("https://github.com/acme/api.git", "https://github.com/acme/api"),
        (
            "https://oauth2:glpat-s3cret@gitlab.example.com/acme/api.git",
            "https://gitlab.example.com/acme/api",
        ),
        ("https://user@git.example.com:8443/acme/api/", "https://git.example.com:8443/acme/api"),
        ("ssh://git@git.example.com:2222/acme/api.git", "https://git.example.com/acme/api"),
        ("http://intranet/acme/api", "http://intranet/acme/api"),
        ("/srv/git/api.git", None),
        ("file:///srv/git/api.git", None),
        ("../api", None),
    ],
)
def test_public_url(remote: str, url: str | None) -> None:
    assert git.public_url(remote) == url
