"""no-credentials and no-build-secrets against real images: every planted credential kind is found
(also one a later layer deletes, and ones only in ENV or history), with its rule and a redacted
preview that no output format ever widens to the whole secret; images that ship none, including
popular packages full of key-like test data, pass with zero findings.

Images derive from the good tinyapp image (tests/engine/test_checks.py), so they build in seconds.
"""

from __future__ import annotations

import dataclasses
import io
import secrets
from pathlib import Path

import pytest
from rich.console import Console

from dockyard import config, engine
from dockyard.actions import VerifyRequest
from dockyard.actions import verify as verify_action
from dockyard.build import buildkit as build
from dockyard.errors import ChecksFailed
from dockyard.results import Outcome
from dockyard.verify import gather as verify
from tests.credential_samples import planted, rand
from tests.engine.conftest import LABEL_TEST_RUN, ROOT, TEST_RUN
from tests.engine.layer_sources import assert_sources_agree, read_layers
from tests.engine.test_checks import Variant, good, run, variant

__all__ = ["good", "variant"]  # fixtures used here

# Planted files go into the context under creds/ and land under /app; one token is written by a RUN
# and deleted by the next; ENV and a build ARG hold literal credentials.
PLANTED = """\
FROM {good}
USER root
ENV GOOGLE_APPLICATION_CREDENTIALS=/app/config/google-credentials.json
ENV API_TOKEN={api_token}
ARG NPM_TOKEN={arg_token}
RUN test -n "$NPM_TOKEN"
COPY creds/ /app/
COPY keystore.p12 /app/keystore.p12
RUN printf 'token=%s\\n' "{deleted}" > /app/tmp-token
RUN rm /app/tmp-token
USER app
"""


def test_every_planted_credential_is_found_with_its_rule_and_a_redacted_preview(
    docker: engine.Engine, variant: Variant, tmp_path: Path
) -> None:
    samples = planted()
    api_token, arg_token, deleted = rand(32), "npm_" + rand(36), "ghp_" + rand(36)
    dockerfile = PLANTED.format(good="{good}", api_token=api_token, arg_token=arg_token, deleted=deleted)
    files = {f"creds{s.path.removeprefix('/app')}": s.content for s in samples}
    files |= {"Dockerfile": dockerfile, "keystore.p12": rand(600), ".dockerignore": "**/__pycache__\n"}
    settings, ref = variant("planted", files)

    result = run(docker, settings, ref, "no-credentials")["no-credentials"]
    assert result.outcome is Outcome.FAIL
    details = "\n".join(result.details)
    for sample in samples:
        for rule in sample.rules:
            assert any(sample.path in line and f": {rule} " in line for line in result.details), (
                sample.path,
                rule,
                details,
            )
    assert any("/app/keystore.p12: credential-file" in line for line in result.details), details
    assert any(
        "/app/tmp-token:1: github-token ghp_****" in line and "deletes it; it stays in the image" in line
        for line in result.details
    ), details
    assert f"ENV API_TOKEN: env-secret {api_token[:4]}****{api_token[-4:]}" in details
    assert any("ARG NPM_TOKEN: build-arg-secret npm_****" in line for line in result.details), details
    assert any("ENV GOOGLE_APPLICATION_CREDENTIALS names it" in line for line in result.details), details
    assert "/app/.aws/credentials:2: aws-access-key AKIA****" in details
    # read from the layer directories and from the export: the same findings
    assert_sources_agree(docker, settings, ref)

    # no output format ever holds a secret whole: table, JSON, JUnit, Markdown
    out = tmp_path / "out"
    out.mkdir()
    console = Console(record=True, width=300, file=io.StringIO())
    request = VerifyRequest(
        image=ref,
        only=("no-credentials",),
        json_path=out / "r.json",
        junit_path=out / "r.xml",
        markdown_path=out / "r.md",
    )
    with pytest.raises(ChecksFailed):
        verify_action(settings, request, console)
    outputs = {"table": console.export_text(), **{p.name: p.read_text() for p in out.iterdir()}}
    assert "aws-secret-key" in outputs["r.json"]
    every_secret = [secret for sample in samples for secret in sample.secrets] + [
        api_token,
        arg_token,
        deleted,
    ]
    for name, text in outputs.items():
        leaked = [secret[:12] + "..." for secret in every_secret if secret in text]
        assert not leaked, (name, leaked)


def test_credentials_pass_on_the_good_image_and_waivers_show_their_reason(
    docker: engine.Engine, good: tuple[config.Settings, build.BuildResult], variant: Variant
) -> None:
    settings, built = good
    clean = run(docker, settings, built.tags[0], "no-credentials", "no-build-secrets")
    assert clean["no-credentials"].outcome is Outcome.PASS, clean["no-credentials"].details
    assert "no private keys" in clean["no-credentials"].evidence
    assert clean["no-build-secrets"].outcome is Outcome.PASS

    key = planted()[3]  # a PEM private key
    files = {
        "Dockerfile": "FROM {good}\nCOPY fixture.key /app/tests/fixtures/server.key\n",
        "fixture.key": key.content,
        ".dockerignore": "**/__pycache__\n",
    }
    settings, ref = variant("waived", files)
    failing = run(docker, settings, ref, "no-credentials")["no-credentials"]
    assert failing.outcome is Outcome.FAIL
    assert "/app/tests/fixtures/server.key:1 (private-key RSA PRIVATE KEY (" in failing.evidence
    waiver = config.CredentialWaiver("/app/tests/fixtures/*", "private-key", "a test fixture key, no account")
    waived = run(docker, settings, ref, "no-credentials", credentials_allow=(waiver,))["no-credentials"]
    assert waived.outcome is Outcome.PASS
    assert waived.evidence.endswith("; 1 waived")
    assert any("a test fixture key, no account" in line for line in waived.details)


# The CA bundle's public certificates ship everywhere; what must not ship is the bundle's own file
# or its private part. The "company CA" here is a certificate-shaped block of the test's own making,
# its last 9 lines, appended to the system bundle. A secret's content is not part of BuildKit's
# cache key: the nonce makes each run copy this run's secrets, not a cached layer's.
CA_LEAKS = """\
FROM {good}
USER root
ENV SECRETS_TEST_RUN={nonce}
RUN --mount=type=secret,id=bundle tail -n 9 /run/secrets/bundle >> /etc/ssl/certs/ca-certificates.crt
RUN --mount=type=secret,id=bundle printf '%s' "$(cat /run/secrets/bundle)" > /opt/bundle.pem \\
    && gzip -c /run/secrets/bundle > /opt/bundle.pem.gz && base64 /run/secrets/bundle > /opt/bundle.b64
RUN --mount=type=secret,id=token sed 's/$/\\r/' /run/secrets/token > /opt/token.crlf
RUN --mount=type=secret,id=token head -n 2 /run/secrets/token > /opt/token.short
RUN rm /opt/token.short
USER app
"""


def test_build_secrets_are_found_however_they_were_copied(
    docker: engine.Engine,
    good: tuple[config.Settings, build.BuildResult],
    variant: Variant,
    tmp_path: Path,
) -> None:
    public = Path("/etc/ssl/certs/ca-certificates.crt").read_text().split("-----END CERTIFICATE-----\n")[:3]
    company = "-----BEGIN CERTIFICATE-----\n" + "\n".join(rand(64, "ABCDEFGHIJKLMNOP") for _ in range(6))
    company += "\nQUJD\n-----END CERTIFICATE-----\n"
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("".join(block + "-----END CERTIFICATE-----\n" for block in public) + company)
    token = tmp_path / "token.txt"
    token.write_text("".join(f"line {i} {secrets.token_hex(12)}\n" for i in range(3)))
    dockerfile = CA_LEAKS.replace("{nonce}", secrets.token_hex(8))
    settings, ref = variant("ca", {"Dockerfile": dockerfile}, secrets={"bundle": bundle, "token": token})

    result = run(docker, settings, ref, "no-build-secrets", secrets=(bundle, token))["no-build-secrets"]
    assert result.outcome is Outcome.FAIL, (result.evidence, result.details)
    details = "\n".join(result.details)
    assert "/etc/ssl/certs/ca-certificates.crt holds certificate 4 of 4 of bundle.pem" in details
    assert "/opt/bundle.pem holds a copy of bundle.pem" in details  # printf dropped the final newline
    assert "/opt/bundle.pem.gz holds a copy (gunzipped) of bundle.pem" in details
    assert "/opt/bundle.b64 holds a copy (base64-decoded) of bundle.pem" in details
    assert "/opt/token.crlf holds a copy of token.txt" in details
    assert "/opt/token.short holds a copy without its last line of token.txt" in details
    assert "deletes it, but it stays in the image" in details
    # the public certificates alone are no finding: the good image was built with the same bundle's
    # public part in its base (Debian's ca-certificates) and passes
    clean = run(docker, good[0], good[1].tags[0], "no-build-secrets", secrets=(bundle, token))
    assert clean["no-build-secrets"].outcome is Outcome.PASS, clean["no-build-secrets"].details
    assert_sources_agree(docker, settings, ref, secrets=(bundle, token))
    assert_sources_agree(docker, good[0], good[1].tags[0], secrets=(bundle, token))


# Popular packages whose wheels hold key-like data: tornado and twisted ship test keys, botocore its
# documentation's example keys, certifi and pip the public CA bundle, cryptography and paramiko key
# handling code with PEM markers.
POPULAR = """\
ARG UV_IMAGE
FROM ${UV_IMAGE} AS uv
FROM {good}
USER root
COPY --from=uv /uv /usr/local/bin/uv
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \\
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi; \\
    uv venv /opt/popular && uv pip install --python /opt/popular/bin/python \\
        cryptography certifi requests botocore tornado twisted paramiko pyjwt
USER app
"""


def test_popular_packages_with_key_like_test_data_give_no_finding(
    docker: engine.Engine, variant: Variant
) -> None:
    settings, ref = variant("popular", {"Dockerfile": POPULAR})
    result = run(docker, settings, ref, "no-credentials")["no-credentials"]
    assert result.outcome is Outcome.PASS, result.details
    # their key-like files were seen and judged, not skipped
    assert any("not reported: not private-key material, or in their tests" in line for line in result.details)
    assert_sources_agree(docker, settings, ref)


@pytest.fixture(scope="module")
def project_image(docker: engine.Engine) -> build.BuildResult:
    settings = config.load(ROOT)
    request = build.request_for(settings, tags=(f"dockyard-test/self-credentials:{TEST_RUN}",))
    request = dataclasses.replace(request, labels={**request.labels, LABEL_TEST_RUN: TEST_RUN})
    return build.build(docker, request)


def test_dockyards_own_image_has_no_credentials(
    docker: engine.Engine, project_image: build.BuildResult
) -> None:
    settings = config.load(ROOT)
    report = verify.verify_image(
        docker,
        settings,
        project_image.tags[0],
        verify.VerifyOptions(only=("no-credentials", "no-build-secrets")),
    )
    results = {r.check_id: r for r in report.results}
    assert results["no-credentials"].outcome is Outcome.PASS, results["no-credentials"].details
    assert results["no-build-secrets"].outcome is Outcome.PASS, results["no-build-secrets"].details
    assert_sources_agree(docker, settings, project_image.tags[0])


def test_layer_directories_that_do_not_match_the_image_give_way_to_the_export(
    docker: engine.Engine, variant: Variant
) -> None:
    key = next(s for s in planted() if "private-key" in s.rules)
    dockerfile = "FROM {good}\nCOPY k.pem /app/k.pem\n"
    files = {"Dockerfile": dockerfile, "k.pem": key.content, ".dockerignore": "**/__pycache__\n"}
    settings, ref = variant("swapped", files)
    dirs = assert_sources_agree(docker, settings, ref)
    assert dirs.credentials is not None
    assert {f.path for f in dirs.credentials.findings} == {"/app/k.pem"}
    graph = dict(docker.image(ref).attrs["GraphDriver"])
    data = dict(graph["Data"])
    lower = data["LowerDir"].split(":")
    data["LowerDir"] = ":".join([lower[1], lower[0], *lower[2:]])  # two layers swapped
    swapped = read_layers(docker, settings, ref, "auto", graph_driver={**graph, "Data": data})
    assert swapped.source.startswith("the image's export (`docker save`): "), swapped.source
    assert "layer" in swapped.source
    assert swapped.credentials is not None
    assert swapped.credentials.findings == dirs.credentials.findings
    # no directories at all (a remote engine's): the export, saying why
    elsewhere = {"Name": "overlay2", "Data": {"UpperDir": "/nonexistent/overlay2/x/diff"}}
    remote = read_layers(docker, settings, ref, "auto", graph_driver=elsewhere)
    assert remote.source.startswith("the image's export (`docker save`): "), remote.source
    assert remote.credentials is not None
    assert remote.credentials.findings == dirs.credentials.findings
