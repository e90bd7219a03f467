"""The credential rule set, the redaction, the PEM reader, the build-secret prints and the layer
scan, on text samples and synthetic exports (no engine)."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import tracemalloc
from pathlib import Path

import pytest

from dockyard import config
from dockyard.credentials import fingerprint, pem, rules
from dockyard.credentials.fingerprint import Normaliser, SecretHook, SecretPrint
from dockyard.credentials.layers import CredentialHook, Finding
from dockyard.errors import ConfigError
from dockyard.image.export import scan_export
from dockyard.image.metadata import ImageInfo
from dockyard.results import CheckResult, Report
from dockyard.verify import report as reports
from dockyard.verify.checks import credentials as credential_checks
from dockyard.verify.facts import ExportFacts, Facts
from tests.credential_samples import openssh_ed25519, pkcs8, planted, putty_v3, rand, rsa_pkcs1_der
from tests.credential_samples import pem as make_pem
from tests.unit.test_imagefs import chunked, docker_save, layer_tar, sha256

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rule_set() -> rules.RuleSet:
    return rules.rule_set()


def found(rule_set: rules.RuleSet, text: str, path: str = "/app/settings.env") -> set[tuple[str, str]]:
    data = text.encode()
    hits = rule_set.keys(data) + rule_set.tokens(data)
    hits += rule_set.loose(data, path, hits)
    return {(hit.rule, hit.preview) for hit in hits}


# --- redaction ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("AKIAIOSFODNN7EXAMPLE", "AKIA****MPLE"),
        ("hunter2-prod", "hu****od"),
        ("short", "****"),
        ("  ghp_0123456789abcdefghij0123456789abcdef  ", "ghp_****cdef"),
    ],
)
def test_redaction_never_shows_more_than_a_fringe(secret: str, shown: str) -> None:
    assert rules.redact(secret) == shown
    assert secret.strip() not in rules.redact(secret)


@pytest.mark.parametrize(
    "value",
    ["changeme", "${DB_PASSWORD}", "{{ password }}", "<your-token>", "%(pw)s", "$TOKEN", "xxxxxxxx",
     "ca_bundle", "DB_PASSWORD", "AKIA****MPLE", "ghp_...", "/run/secrets/token", "your-api-key", "***"],
)  # fmt: skip
def test_placeholders_are_not_credentials(value: str) -> None:
    assert rules.is_placeholder(value)


@pytest.mark.parametrize("value", ["hunter2-prod", "s3cr3t-Pa55", "Tr0ub4dor&3", "wJalrXUtnFEMI/K7MDENG"])
def test_literal_secrets_are_not_placeholders(value: str) -> None:
    assert not rules.is_placeholder(value)


# --- the rule set, kind by kind ----------------------------------------------------------------------


def test_every_planted_kind_is_found_with_a_redacted_preview(rule_set: rules.RuleSet) -> None:
    for sample in planted():
        if sample.path.endswith(".p12"):
            continue
        hits = found(rule_set, sample.content, sample.path)
        content_rules = {r for r in sample.rules if r not in ("credential-file", "credential-env-file")}
        assert content_rules <= {rule for rule, _ in hits}, (sample.path, hits)
        for _, preview in hits:
            assert not any(secret in preview for secret in sample.secrets), (sample.path, preview)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n", "aws-secret-key"),
        ('{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}', "aws-secret-key"),
        ("url = https://user:s3cr3t-Pa55@pypi.acme.example/simple\n", "url-password"),
        ("amqp://guest:Zq8-vX2pLm@rabbit:5672//\n", "url-password"),
        ("Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=Root;SharedAccessKey="
         + "B" * 43 + "=\n", "azure-connection-string"),
        ("TOKEN=github_pat_" + "A" * 22 + "_" + "b" * 59 + "\n", "github-token"),
        ("key: dckr_oat_" + "x" * 30 + "\n", "docker-hub-token"),
        ("https://hooks.slack.com/services/T01234567/B01234567/" + "a" * 24 + "\n", "slack-token"),
        ('{"type": "authorized_user", "client_id": "x", "refresh_token": "1//0g' + "x" * 40 + '"}',
         "gcp-refresh-token"),
        ('DB_PASSWORD = "Tr0ub4dor&3"\n', "secret-keyword"),
    ],
)  # fmt: skip
def test_formats_detect_secrets_lacks_are_found(rule_set: rules.RuleSet, text: str, rule: str) -> None:
    path = "/app/settings.py" if "DB_PASSWORD =" in text else "/app/settings.env"
    assert rule in {r for r, _ in found(rule_set, text, path)}


# detect-secrets' assignment detectors ignore case, so the lines the loose tier gives them must not
# depend on it: the same secret in upper case is found too (the gates read the lowercased text).
_MIXED = "Qw7rTz2Lp9Xc4Vb8Nm3Kj6Hg5Fd1Sa0Ze7Yu4Io2Pa8Sd6Fg3Hj1Kl9Zx5Cv7Bn2M"


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ('CLOUDANT_PASSWORD = "' + "QwErTzUiOpAsDfGhJkLyXcVb".upper() + '"\n', "cloudant-credential"),
        ('cloudant_password = "qwertzuiopasdfghjklyxcvb"\n', "cloudant-credential"),
        ("https://admin:" + "ABCDEF0123456789" * 4 + "@acct.cloudant.com\n", "cloudant-credential"),
        ('SL_API_KEY = "' + _MIXED[:64] + '"\n', "softlayer-credential"),
        ("https://api.softlayer.com/soap/v3.1/" + _MIXED[:64].upper() + "\n", "softlayer-credential"),
        ('IBM_COS_SECRET_ACCESS_KEY = "' + "A1B2C3D4E5F6" * 4 + '"\n', "ibm-cos-key"),
        ('IBM_CLOUD_IAM_KEY = "' + _MIXED[:44] + '"\n', "ibm-cloud-key"),
    ],
)  # fmt: skip
def test_assignment_detectors_find_secrets_whatever_their_case(
    rule_set: rules.RuleSet, text: str, rule: str
) -> None:
    assert rule in {r for r, _ in found(rule_set, text, "/app/settings.py")}


@pytest.mark.parametrize(
    "text",
    [
        'REASON_PRIVATE_KEY = "private key"\n',
        'ca_secret_id: str = "ca_bundle"\n',
        "postgres://user:password@localhost/db\n",
        "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@db/app\n",
        'password = os.environ["DB_PASSWORD"]\n',
        '"""What may be shown of a secret: `AKIA****MPLE`."""\n',
        "MARKER = b'-----BEGIN RSA PRIVATE KEY-----'\n",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----\n",
        "https://github.com/dockyard-dev/dockyard\n",
        "passwd:         files\nshadow:         files\n",
    ],
)
def test_look_alikes_are_not_findings(rule_set: rules.RuleSet, text: str) -> None:
    assert found(rule_set, text, "/app/src/app/settings.py") == set()
    assert found(rule_set, text, "/etc/nsswitch.conf") == set()


# --- private keys -----------------------------------------------------------------------------------


def test_private_keys_in_every_encoding_are_real_key_material() -> None:
    rsa = make_pem("RSA PRIVATE KEY", rsa_pkcs1_der())
    p8 = make_pem("PRIVATE KEY", pkcs8(rsa_pkcs1_der()))
    cases = {
        "pem": rsa,
        "crlf": rsa.replace("\n", "\r\n"),
        "pkcs8 in json": json.dumps({"private_key": p8}),
        "json in json": json.dumps({"inner": json.dumps({"private_key": p8})}),
        "yaml escaped": 'key: "' + p8.replace("\n", "\\n") + '"\n',
        "base64": "client-key-data: " + base64.b64encode(rsa.encode()).decode(),
        "openssh": openssh_ed25519(),
        "putty": putty_v3(),
    }
    for name, text in cases.items():
        keys = pem.private_keys(text.encode())
        assert len(keys) == 1, name
        assert keys[0].size > 0
        assert "PRIVATE KEY" in keys[0].label or keys[0].label.startswith("PuTTY"), name


def test_a_truncated_or_placeholder_key_body_is_no_key() -> None:
    der = rsa_pkcs1_der()
    truncated = make_pem("RSA PRIVATE KEY", der[:-40])
    assert pem.private_keys(truncated.encode()) == []
    assert pem.private_keys(b"-----BEGIN PRIVATE KEY-----\n<your key>\n-----END PRIVATE KEY-----") == []


# --- build-secret prints ------------------------------------------------------------------------------


def test_normalising_drops_line_ends_and_surrounding_whitespace_however_it_is_chunked() -> None:
    text = b"\n\n  first line \r\nsecond\t\r\n\r\n  third  \n\n\n"
    expected = b"first line\nsecond\n\n  third"
    for size in (1, 2, 3, 5, len(text)):
        normaliser = Normaliser()
        out = b"".join(normaliser.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert out == expected, size


def test_a_print_knows_copies_one_line_short_and_its_pem_blocks() -> None:
    text = b"alpha-secret-line\nbeta-secret-line\ngamma-secret-line\n"
    made = SecretPrint.from_chunks("s", [text])
    for variant in (text.rstrip(), text.replace(b"\n", b"\r\n"), text[: text.rfind(b"gamma")], text[18:]):
        again = SecretPrint.from_chunks("copy", [variant])
        assert set(again.variants.values()) & set(made.variants.values()), variant
    bundle = make_pem("CERTIFICATE", b"\x30" + bytes(200)) + make_pem("CERTIFICATE", b"\x30" + bytes(300))
    assert len(SecretPrint.from_chunks("ca", [bundle.encode()]).blocks) == 2


def test_a_large_secret_is_printed_in_flat_memory() -> None:
    block = bytes(range(256)) * 4096  # 1 MiB
    tracemalloc.start()
    made = SecretPrint.from_chunks("big", (block for _ in range(64)))  # 64 MiB streamed
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert made.size == 64 << 20
    assert made.text is None
    assert len(made.anchors) >= 1
    assert peak < 8 << 20, peak


def _secret_scan(prints: list[SecretPrint], layers: list[bytes]) -> list[fingerprint.SecretMatch]:
    hook = SecretHook(prints, 1)
    owners = CredentialHook(1, content=False)
    scan = scan_export(
        chunked(docker_save(layers)), hooks=[owners, hook], diff_ids=[sha256(t) for t in layers]
    )
    return hook.result(scan, owners.owned, set())


def test_secret_copies_are_found_in_every_shape_and_public_pem_blocks_are_not() -> None:
    token = b"tok-" + rand(24).encode() + b"\n"
    public = make_pem("CERTIFICATE", b"\x30" + bytes(300)).encode()
    other = make_pem("CERTIFICATE", b"\x30" + bytes(400)).encode()
    company = make_pem("CERTIFICATE", b"\x30" + rand(300).encode()).encode()
    prints = [SecretPrint.from_chunks("token", [token]), SecretPrint.from_chunks("ca", [public + company])]
    base = layer_tar([("etc/ssl/certs/ca-certificates.crt", other + public)])
    added = layer_tar([
        ("opt/a", token.rstrip()),
        ("opt/b", b"x = " + token),
        ("opt/c.gz", gzip.compress(token)),
        ("opt/d.b64", base64.encodebytes(token)),
        ("opt/only-public.pem", public),
        ("etc/ssl/certs/ca-certificates.crt", other + company),  # the company CA appended
        ("opt/k8s.yaml", b"ca.crt: " + base64.b64encode(company)),
    ])  # fmt: skip
    matches = {(m.path, m.secret): m.how for m in _secret_scan(prints, [base, added])}
    assert matches == {
        ("/opt/a", "token"): "a copy",
        ("/opt/b", "token"): "an embedded copy",
        ("/opt/c.gz", "token"): "a copy (gunzipped)",
        ("/opt/d.b64", "token"): "a copy (base64-decoded)",
        ("/etc/ssl/certs/ca-certificates.crt", "ca"): "certificate 2 of 2",
        ("/opt/k8s.yaml", "ca"): "certificate 2 of 2 (base64-decoded)",
    }
    assert prints[1].public == {1}


# --- the layer scan -----------------------------------------------------------------------------------


RECORD = b"pkg/__init__.py,sha256=x,1\npkg/tests/test.key,,\npkg/docs.txt,,\n"


def test_layers_scan_finds_deleted_files_and_spares_distributions_and_base(rule_set: rules.RuleSet) -> None:
    key = make_pem("RSA PRIVATE KEY", rsa_pkcs1_der()).encode()
    token = ("ghp_" + rand(36)).encode()
    site = "usr/lib/python3/site-packages"
    base = layer_tar([("root/.aws/credentials", b"aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n")])
    added = layer_tar([
        (f"{site}/pkg/__init__.py", b"EXAMPLE = 'AKIAIOSFODNN7EXAMPLE'\n"),
        (f"{site}/pkg/tests/test.key", key),
        (f"{site}/pkg/docs.txt", b"token: " + token),
        (f"{site}/pkg-1.0.dist-info/RECORD", RECORD),
        (f"{site}/loose.json", b'{"token": "' + token + b'"}'),
        ("app/.aws/credentials", b"[default]\n"),
        ("app/tmp.env", b"GITHUB_TOKEN=" + token + b"\n"),
        ("app/server.key", key),
    ])  # fmt: skip
    later = layer_tar([("app/tmp.env", "wh")])
    layers = [base, added, later]
    hook = CredentialHook(1, ("myapp",), rule_set=rule_set)
    scan = scan_export(chunked(docker_save(layers)), hooks=[hook], diff_ids=[sha256(t) for t in layers])
    result = hook.result(scan, {"GOOGLE_APPLICATION_CREDENTIALS": "/app/server.key"})
    seen = {(f.path, f.rule, f.removed_in) for f in result.findings}
    assert seen == {
        (f"/{site}/loose.json", "github-token", None),
        ("/app/.aws/credentials", "credential-file", None),
        ("/app/tmp.env", "github-token", 2),
        ("/app/server.key", "private-key", None),
        ("/app/server.key", "credential-env-file", None),
    }
    # the package's test key and its docs' token (its own code gets the key rule only: no match)
    assert result.exempt == 2
    assert result.layers == [1, 2]


# --- the check ------------------------------------------------------------------------------------------


def _facts(findings: list[Finding], env: dict[str, str], history: list[str]) -> Facts:
    settings = config.load(ROOT, environ={"DOCKYARD_MACHINE_FILE": "/nonexistent"})
    attrs = {
        "Id": "sha256:" + "1" * 64,
        "Config": {"Env": [f"{k}={v}" for k, v in env.items()], "Labels": {"org.example.note": "hi"}},
        "RootFS": {"Layers": ["sha256:" + "0" * 64]},
    }
    image = ImageInfo.from_inspect("img:1", attrs, [{"CreatedBy": h} for h in reversed(history)])
    scan = scan_export(chunked(docker_save([layer_tar([("x", b"1")])])))
    credentials = CredentialHook(0, content=False).result(scan, {})
    credentials.findings = findings
    export = ExportFacts(scan=scan, base_layers=0, secrets=(), credentials=credentials, base_history=1)
    return Facts(settings=settings, image=image, export=export)


def test_the_check_reads_env_labels_and_build_args_and_honours_waivers() -> None:
    api, npm = rand(30), "npm_" + rand(36)
    history = [
        "base entry ARG PASSWORD=from-the-base-image",
        f"ARG NPM_TOKEN={npm}",
        f"RUN |2 NPM_TOKEN={npm} PYTHON_IMAGE=python:3.13 /bin/sh -c make",
        "RUN /bin/sh -c pip install --index-url https://ci:Zq8vX2pLm44@pypi.acme.example/simple app",
    ]
    env = {"API_TOKEN": api, "TOKEN_TTL": "3600", "PASSWORD_FILE": "/run/secrets/pw", "HOME": "/app"}
    facts = _facts([], env, history)
    verdict = credential_checks.check_no_credentials(facts)
    lines = "\n".join(verdict.details)
    assert f"ENV API_TOKEN: env-secret {rules.redact(api)}" in lines
    assert "history #2 (ARG) ARG NPM_TOKEN: build-arg-secret npm_****" in lines
    assert "history #3 (RUN) ARG NPM_TOKEN: build-arg-secret npm_****" in lines
    assert "url-password Zq****44" in lines
    assert "TOKEN_TTL" not in lines
    assert "PASSWORD_FILE" not in lines
    assert "from-the-base-image" not in lines
    assert api not in lines
    assert npm not in lines

    waivers = (
        config.CredentialWaiver("ENV API_TOKEN", "env-secret", "a public demo token"),
        config.CredentialWaiver("history*", "*", "the CI index is read-only"),
    )
    facts.settings = dataclasses.replace(
        facts.settings, verify=dataclasses.replace(facts.settings.verify, credentials_allow=waivers)
    )
    verdict = credential_checks.check_no_credentials(facts)
    assert verdict.outcome.value == "pass", verdict.details
    assert verdict.evidence.endswith("; 4 waived")
    assert any("a public demo token" in line for line in verdict.details)


def test_no_report_format_carries_a_secret_whole(tmp_path: Path) -> None:
    secret = "ghp_" + rand(36)
    history = ["base", f"RUN /bin/sh -c echo {secret} > /dev/null"]
    verdict = credential_checks.check_no_credentials(_facts([], {}, history))
    assert verdict.outcome.value == "fail"
    result = CheckResult("no-credentials", "t", verdict.outcome, verdict.evidence, verdict.details)
    report = Report("verify-image img:1", (result,))
    texts = [
        json.dumps(reports.to_json(report)),
        reports.to_junit(report),
        reports.to_markdown(report),
    ]
    for text in texts:
        assert secret not in text
        assert "ghp_****" in text


def test_waivers_are_checked_when_the_config_loads(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\n[tool.dockyard.verify]\n'
        'credentials-allow = [{ path = "/app/x", rule = "private-keys", reason = "fixture" }]\n'
    )
    with pytest.raises(ConfigError, match="Perhaps you meant 'private-key'"):
        config.load(project, environ={"DOCKYARD_MACHINE_FILE": "/nonexistent"})
    (project / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "1"\n[tool.dockyard.verify]\n'
        'credentials-allow = [{ path = "/app/x", rule = "private-key" }]\n'
    )
    with pytest.raises(ConfigError, match="`reason` is required"):
        config.load(project, environ={"DOCKYARD_MACHINE_FILE": "/nonexistent"})
