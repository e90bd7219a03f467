"""The app's own tests: run with the example's dev group (`uv run pytest` in this folder)."""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from api_service import __version__, cli
from api_service.app import app


@pytest.fixture
def client() -> TestClient:
    return TestClient(app)


def test_health_answers_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_version_names_the_running_build(client: TestClient) -> None:
    response = client.get("/version")
    assert response.status_code == 200
    assert response.json() == {"name": "api-service", "version": __version__}


def test_unknown_paths_and_methods_are_refused(client: TestClient) -> None:
    assert client.get("/nope").status_code == 404
    assert client.post("/health").status_code == 405


def test_version_flag_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"api-service {__version__}"


def test_serves_on_all_interfaces_port_8000_with_a_bounded_graceful_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(uvicorn, "run", lambda target, **kwargs: calls.append((target, kwargs)))
    cli.main([])
    [(target, kwargs)] = calls
    assert target is app
    assert (kwargs["host"], kwargs["port"]) == (cli.DEFAULT_HOST, 8000)
    assert cli.DEFAULT_HOST == "0.0.0.0"  # noqa: S104 - the container's server must be reachable
    assert 0 < kwargs["timeout_graceful_shutdown"] < 10
