"""push and size-report against a registry with token authentication, the way Docker Hub, GHCR, ECR
and GitLab authenticate: a live Distribution with `auth: token` and a token server of the test's own
(tests/engine/token_registry.py). The engine speaks the token protocol itself when it pushes; dockyard's
own registry client follows the registry's Bearer challenge to the token server, with the docker config's
credentials, to check access before the push and to read the pushed manifest.

The password is random per run: finding it anywhere dockyard wrote or started is a leak.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dockyard.verify.gather import copy_project
from tests.conftest import in_ci
from tests.engine import auth_registry, token_registry
from tests.engine.conftest import ROOT, TEST_RUN
from tests.engine.test_registry_auth import SPY, WRONG_PASSWORD, Dockyard


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[token_registry.TokenRegistry]:
    if reason := token_registry.problem():
        if in_ci():
            pytest.fail(f"CI=true but no registry with token auth can run here: {reason}")
        pytest.skip(reason)
    with token_registry.running(tmp_path_factory.mktemp("token-registry")) as made:
        yield made


@pytest.fixture(scope="module")
def dockyard(registry: token_registry.TokenRegistry, tmp_path_factory: pytest.TempPathFactory) -> Dockyard:
    root = tmp_path_factory.mktemp("token-project")
    project = root / "tinyapp"
    copy_project(ROOT / "tests" / "fixtures" / "tinyapp", project)
    spy = root / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(SPY)
    image = f"{registry.host}/dockyard-test/tinyapp-token-{TEST_RUN}"
    env = {**os.environ, "DOCKYARD_IMAGE": image, "XDG_STATE_HOME": str(root / "state")}
    return Dockyard(
        project, root / "state", spy, env, (registry.password, WRONG_PASSWORD, registry.tokens.identity_token)
    )


@pytest.fixture(scope="module")
def built(
    dockyard: Dockyard, registry: token_registry.TokenRegistry, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The project built on the machine's engine under the token registry's name."""
    run = dockyard("build", "--quiet", docker_config=registry.docker_config(tmp_path_factory.mktemp("dc")))
    assert run.code == 0, run.err
    return dockyard.env["DOCKYARD_IMAGE"]


@pytest.fixture(scope="module", autouse=True)
def _untag(registry: token_registry.TokenRegistry) -> Iterator[None]:
    yield
    auth_registry.untag(registry.host)


@pytest.mark.parametrize("login", ["none", "wrong"])
def test_push_without_the_right_credentials_is_one_line_naming_docker_login(
    login: str, dockyard: Dockyard, registry: token_registry.TokenRegistry, built: str, tmp_path: Path
) -> None:
    config_dir = (
        registry.docker_config(tmp_path / "docker", login=False)
        if login == "none"
        else registry.docker_config(tmp_path / "docker", password=WRONG_PASSWORD)
    )
    report = tmp_path / "push.json"
    asked_before = len(registry.tokens.seen)
    run = dockyard("push", "--json", str(report), docker_config=config_dir)
    assert run.code == 1, run.err
    assert "Traceback" not in run.err + run.out
    assert len(run.error_lines) == 1, run.err
    line = run.error_lines[0]
    assert line.startswith("dockyard: error: ")
    assert f"{registry.host} refused access" in line
    assert f"`docker login {registry.host}`" in line
    had = {"none": "(no docker config credentials)", "wrong": "(the docker config's credentials)"}
    assert had[login] in line
    assert not report.exists(), "no report of a push that did not happen"
    dockyard.assert_never_leaked(run, report)

    # dockyard went to the token server: anonymously (an anonymous token grants nothing, as on Docker
    # Hub) or with the wrong password (refused there). The registry holds no manifest of the image.
    asked = [seen for seen in registry.tokens.seen[asked_before:] if seen.agent == "dockyard"]
    assert asked, "dockyard asked the token server"
    if login == "none":
        assert all(seen.account is None and seen.status == 200 for seen in asked), asked
    else:
        assert [(seen.account, seen.status) for seen in asked] == [(registry.user, 401)], asked
    assert all(seen.service == token_registry.SERVICE for seen in asked), asked
    repository = built.removeprefix(f"{registry.host}/")
    anonymous = requests.get(
        f"http://{registry.host}/v2/{repository}/manifests/latest",
        headers={"Authorization": "Bearer not-a-token"},
        timeout=10,
    )
    assert anonymous.status_code == 401


def test_push_through_the_token_protocol_reports_the_digest_and_size_report_reads_the_registry(
    dockyard: Dockyard, registry: token_registry.TokenRegistry, built: str, tmp_path: Path
) -> None:
    config_dir = registry.docker_config(tmp_path / "docker")
    repository = built.removeprefix(f"{registry.host}/")
    report = tmp_path / "push.json"
    asked_before = len(registry.tokens.seen)
    run = dockyard("push", "--json", str(report), docker_config=config_dir)
    assert run.code == 0, run.err
    pushed = json.loads(report.read_text())["pushes"][0]
    pinned = pushed["pinned"]
    assert pinned.startswith(f"{built}@sha256:")
    assert f"deploy  {pinned}" in run.out
    assert {layer["status"] for layer in pushed["layers"]} >= {"pushed"}
    dockyard.assert_never_leaked(run, report)

    asked = registry.tokens.seen[asked_before:]
    ours = [seen for seen in asked if seen.agent == "dockyard"]
    engines = [seen for seen in asked if seen.agent.startswith("docker/")]
    # dockyard's client: a token for pulling this repository (the access check and the manifest read).
    assert any(seen.scopes == (f"repository:{repository}:pull",) for seen in ours), ours
    assert all(seen.account == registry.user and seen.status == 200 for seen in ours), ours
    # The engine's push: a token granting push on the same repository, with the same account.
    granted = {
        action
        for seen in engines
        if seen.account == registry.user and seen.status == 200
        for scope in seen.scopes
        if scope.startswith(f"repository:{repository}:")
        for action in scope.rsplit(":", 1)[1].split(",")
    }
    assert granted >= {"pull", "push"}, asked

    # The registry serves the manifest to a token that grants pull, and to nothing less.
    digest = pinned.split("@", 1)[1]
    url = f"http://{registry.host}/v2/{repository}/manifests/{digest}"
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    refused = requests.get(url, headers={"Accept": accept}, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith(f'Bearer realm="{registry.tokens.realm}"')
    token = requests.get(
        registry.tokens.realm,
        params={"service": token_registry.SERVICE, "scope": f"repository:{repository}:pull"},
        auth=(registry.user, registry.password),
        timeout=10,
    ).json()["token"]
    served = requests.get(url, headers={"Accept": accept, "Authorization": f"Bearer {token}"}, timeout=10)
    assert served.status_code == 200
    assert [layer["size"] for layer in served.json()["layers"]] == [
        layer["compressed"] for layer in pushed["layers"]
    ]

    # size-report reads the compressed sizes from the registry, through the Bearer challenge.
    sized = tmp_path / "size.json"
    asked_before, logged_before = len(registry.tokens.seen), len(registry.requests_seen())
    run = dockyard("size-report", "--json", str(sized), docker_config=config_dir)
    assert run.code == 0, run.err
    data = json.loads(sized.read_text())
    assert data["pushed_as"] == pinned
    assert [row["compressed"] for row in data["layers"]] == [
        layer["compressed"] for layer in pushed["layers"]
    ]
    assert all(isinstance(row["compressed"], int) and row["compressed"] > 0 for row in data["layers"])
    ours = [seen for seen in registry.tokens.seen[asked_before:] if seen.agent == "dockyard"]
    assert ours, "size-report's client asked the token server"
    assert all(seen.scopes == (f"repository:{repository}:pull",) for seen in ours), ours
    read = [seen for seen in registry.requests_seen()[logged_before:] if '"dockyard"' in seen]
    assert any(seen.startswith(f"GET /v2/{repository}/manifests/") and " 200 " in seen for seen in read), read
    dockyard.assert_never_leaked(run, sized)

    # Without credentials the table still comes; the compressed column says why it is empty.
    run = dockyard(
        "size-report", "--json", str(sized),
        docker_config=registry.docker_config(tmp_path / "anon", login=False),
    )  # fmt: skip
    assert run.code == 0, run.err
    data = json.loads(sized.read_text())
    assert data["pushed_as"] is None
    assert all(row["compressed"] is None for row in data["layers"])
    assert any(f"`docker login {registry.host}`" in note for note in data["notes"]), data["notes"]


def test_push_with_an_identity_token_goes_through_the_oauth2_form(
    dockyard: Dockyard, registry: token_registry.TokenRegistry, built: str, tmp_path: Path
) -> None:
    """A docker config holding an `identitytoken` and no password (Azure Container Registry, Docker
    Hub's SSO): dockyard trades it for a token with the OAuth2 form (POST, grant_type=refresh_token),
    as the engine does; the engine pushes with it; a refresh token the server does not know is refused
    in one line."""
    repository = built.removeprefix(f"{registry.host}/")
    config_dir = registry.identity_config(tmp_path / "docker")
    report = tmp_path / "push.json"
    asked_before = len(registry.tokens.seen)
    run = dockyard("push", "--to", f"{built}:identity", "--json", str(report), docker_config=config_dir)
    assert run.code == 0, run.err
    pinned = json.loads(report.read_text())["pushes"][0]["pinned"]
    assert pinned.startswith(f"{built}@sha256:")
    assert f"deploy  {pinned}" in run.out
    dockyard.assert_never_leaked(run, report)
    asked = registry.tokens.seen[asked_before:]
    ours = [seen for seen in asked if seen.agent == "dockyard"]
    assert any(seen.scopes == (f"repository:{repository}:pull",) for seen in ours), ours
    assert all(
        (seen.grant, seen.account, seen.status) == ("refresh_token", registry.user, 200) for seen in ours
    )
    engines = [seen for seen in asked if seen.agent.startswith("docker/")]
    assert engines, asked
    assert all((seen.grant, seen.status) == ("refresh_token", 200) for seen in engines), engines

    stale = json.loads((config_dir / "config.json").read_text())
    stale["auths"][registry.host]["identitytoken"] = WRONG_PASSWORD
    (config_dir / "config.json").write_text(json.dumps(stale))
    run = dockyard("push", "--to", f"{built}:identity", docker_config=config_dir)
    assert run.code == 1, run.err
    assert len(run.error_lines) == 1, run.err
    assert f"{registry.host} refused access (the docker config's credentials)" in run.error_lines[0]
    assert f"`docker login {registry.host}`" in run.error_lines[0]
    dockyard.assert_never_leaked(run)
