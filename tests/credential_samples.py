"""Credentials of every kind the no-credentials check knows, made fresh for each test run.

Nothing here is a real account's secret: the keys are generated on the spot (a real RSA key, small,
in pure Python; OpenSSH and PuTTY files with the right structure around random material), and the
tokens are random strings in each service's format. The tests plant them in images and assert both
that each is found and that no output ever prints one whole.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import struct
from dataclasses import dataclass

_ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


# --- a real RSA key -------------------------------------------------------------------------------------


def _probable_prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if all(pow(a, candidate - 1, candidate) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)):
            return candidate


def _der_int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return b"\x02" + _der_len(len(body)) + body


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der_seq(*parts: bytes) -> bytes:
    body = b"".join(parts)
    return b"\x30" + _der_len(len(body)) + body


def rsa_pkcs1_der(bits: int = 1024) -> bytes:
    """A real RSA private key (PKCS#1 DER)."""
    e = 65537
    while True:
        p, q = _probable_prime(bits // 2), _probable_prime(bits // 2)
        phi = (p - 1) * (q - 1)
        if p != q and phi % e:
            break
    d = pow(e, -1, phi)
    fields = (0, p * q, e, d, p, q, d % (p - 1), d % (q - 1), pow(q, -1, p))
    return _der_seq(*(_der_int(v) for v in fields))


def pem(label: str, der: bytes) -> str:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n"


def pkcs8(der: bytes) -> bytes:
    algorithm = _der_seq(b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01", b"\x05\x00")  # rsaEncryption
    return _der_seq(_der_int(0), algorithm, b"\x04" + _der_len(len(der)) + der)


# --- OpenSSH and PuTTY files ------------------------------------------------------------------------


def _ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def openssh_ed25519() -> str:
    """An unencrypted OpenSSH private key file (the openssh-key-v1 structure, ed25519)."""
    public = secrets.token_bytes(32)
    public_blob = _ssh_string(b"ssh-ed25519") + _ssh_string(public)
    check = secrets.token_bytes(4)
    private = (
        check + check + _ssh_string(b"ssh-ed25519") + _ssh_string(public)
        + _ssh_string(secrets.token_bytes(32) + public) + _ssh_string(b"app@build")
    )  # fmt: skip
    private += bytes(range(1, 1 + (-len(private)) % 8))
    blob = (
        b"openssh-key-v1\x00" + _ssh_string(b"none") + _ssh_string(b"none") + _ssh_string(b"")
        + struct.pack(">I", 1) + _ssh_string(public_blob) + _ssh_string(private)
    )  # fmt: skip
    body = base64.b64encode(blob).decode()
    lines = [body[i : i + 70] for i in range(0, len(body), 70)]
    return (
        "-----BEGIN OPENSSH PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END OPENSSH PRIVATE KEY-----\n"
    )


def putty_v3() -> str:
    public = base64.b64encode(_ssh_string(b"ssh-ed25519") + _ssh_string(secrets.token_bytes(32))).decode()
    private = base64.b64encode(_ssh_string(secrets.token_bytes(32))).decode()
    return (
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\n"
        f"Public-Lines: 2\n{public[:64]}\n{public[64:]}\nPrivate-Lines: 1\n{private}\n"
        f"Private-MAC: {secrets.token_hex(32)}\n"
    )


# --- the set planted in one image ---------------------------------------------------------------------


@dataclass(frozen=True)
class Planted:
    path: str  # where it lands in the image
    content: str
    rules: tuple[str, ...]  # the rules that must find it
    secrets: tuple[str, ...]  # strings that must never be printed whole


def planted() -> list[Planted]:
    rsa = pem("RSA PRIVATE KEY", rsa_pkcs1_der())
    sa_key = pem("PRIVATE KEY", pkcs8(rsa_pkcs1_der()))
    key_id = secrets.token_hex(20)
    service_account = json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-prod",
            "private_key_id": key_id,
            "private_key": sa_key,
            "client_email": "deployer@acme-prod.iam.gserviceaccount.com",
        },
        indent=2,
    )
    akia = "AKIA" + rand(16, string.ascii_uppercase + string.digits)
    aws_secret = rand(40, _ALNUM + "/+")
    npm = "npm_" + rand(36)
    npm_auth = base64.b64encode(f"ci:{rand(16)}".encode()).decode()
    client_key = pem("RSA PRIVATE KEY", rsa_pkcs1_der())
    kube_token = rand(48)
    docker_auth = base64.b64encode(f"acme:{rand(20)}".encode()).decode()
    netrc_password = rand(18)
    pypi = "pypi-AgEIcHlwaS5vcmc" + rand(80, _ALNUM + "-_")
    github = "ghp_" + rand(36)
    gitlab = "glpat-" + rand(20)
    slack = f"xoxb-{rand(10, string.digits)}-{rand(13, string.digits)}-{rand(24)}"
    stripe = "sk_live_" + rand(24)
    docker_hub = "dckr_pat_" + rand(27)
    azure_key = rand(86, _ALNUM + "+/") + "=="
    db_password = rand(14)
    openssh = openssh_ed25519()
    putty = putty_v3()
    return [
        Planted("/app/config/google-credentials.json", service_account,
                ("gcp-service-account", "private-key", "credential-env-file"),
                (key_id, sa_key.splitlines()[1])),
        Planted("/app/.aws/credentials",
                f"[default]\naws_access_key_id = {akia}\naws_secret_access_key = {aws_secret}\n",
                ("aws-access-key", "aws-secret-key", "credential-file"), (akia, aws_secret)),
        Planted("/app/.npmrc", f"//registry.npmjs.org/:_authToken={npm}\n_auth={npm_auth}\n",
                ("npm-token", "npmrc-auth"), (npm, npm_auth)),
        Planted("/app/certs/server.key", rsa, ("private-key",), (rsa.splitlines()[1],)),
        Planted("/app/.ssh/id_ed25519", openssh, ("private-key", "credential-file"),
                (openssh.splitlines()[1],)),
        Planted("/app/deploy.ppk", putty, ("private-key",), (putty.splitlines()[-2],)),
        Planted("/app/.kube/config",
                "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n    server: https://k8s:6443\n"
                "users:\n- name: ci\n  user:\n    token: " + kube_token + "\n"
                "    client-key-data: " + base64.b64encode(client_key.encode()).decode() + "\n",
                ("kubeconfig-credential", "private-key", "credential-file"), (kube_token,)),
        Planted("/app/.docker/config.json",
                json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": docker_auth}}}),
                ("docker-config-auth", "credential-file"), (docker_auth,)),
        Planted("/app/.netrc", f"machine api.acme.example login ci password {netrc_password}\n",
                ("netrc-password",), (netrc_password,)),
        Planted("/app/.pypirc", f"[pypi]\nusername = __token__\npassword = {pypi}\n",
                ("pypi-token",), (pypi,)),
        Planted("/app/settings.env",
                f"GITHUB_TOKEN={github}\nGITLAB_TOKEN={gitlab}\nSLACK_BOT_TOKEN={slack}\nSTRIPE_KEY={stripe}\n"
                f"DOCKERHUB_TOKEN={docker_hub}\n"
                f"AZURE_STORAGE=DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={azure_key};"
                "EndpointSuffix=core.windows.net\n"
                f"DATABASE_URL=postgres://app:{db_password}@db:5432/app\n",
                ("github-token", "gitlab-token", "slack-token", "stripe-key", "docker-hub-token",
                 "azure-connection-string", "url-password"),
                (github, gitlab, slack, stripe, docker_hub, azure_key, db_password)),
    ]  # fmt: skip
