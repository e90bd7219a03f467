"""The rule set for credentials in text, and the redaction every finding goes through.

The token formats come from detect-secrets (Yelp, PyPI `detect-secrets` 1.5): its detectors' own
compiled expressions are run, so a new or corrected format upstream is picked up by upgrading it.
What it lacks is added here: private keys judged by their material (`dockyard.credentials.pem`),
AWS secret keys and session tokens outside quotes, GitHub fine-grained tokens, bare npm tokens and
`.npmrc` `_auth`/`_password`, Docker Hub tokens and `.docker/config.json` auths, Azure shared access
keys and SAS signatures, GCP service-account and authorized-user files, `.netrc`, `.pypirc` and
kubeconfig credentials.

Three tiers, cheapest first, so the scan stays within a fraction of the export's own read time:

* `keys`: real private-key material, in any file (binary ones too);
* `tokens`: formats with a literal start (`AKIA`, `ghp_`, `glpat-`, `xoxb-`, `sk_live_`, `://user:pw@`...),
  looked for by their anchor first and matched on the anchor's line only;
* `loose`: for the files an image's own project ships (not an installed distribution's): the
  detectors without a literal start, the secret-keyword detector, and the rules by file name.

Nothing here keeps a secret: a match becomes a `Hit` holding only the rule, where it is, and a
redacted preview (`redact`) at once.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Final

from dockyard.credentials import pem

if TYPE_CHECKING:
    from detect_secrets.plugins.base import RegexBasedDetector

# --- rule ids ---------------------------------------------------------------------------------------

PRIVATE_KEY: Final = "private-key"
CREDENTIAL_FILE: Final = "credential-file"
CREDENTIAL_ENV_FILE: Final = "credential-env-file"
ENV_SECRET: Final = "env-secret"
BUILD_ARG_SECRET: Final = "build-arg-secret"
SECRET_KEYWORD: Final = "secret-keyword"

# rule id -> what it finds (the README's list and the waiver validation read this)
RULES: Final[dict[str, str]] = {
    PRIVATE_KEY: "private-key material: PEM (also escaped in JSON/YAML, or base64-encoded), OpenSSH, "
    "SSH2, PGP, PuTTY",
    "aws-access-key": "AWS access key ids (AKIA..., ASIA...)",
    "aws-secret-key": "AWS secret access keys",
    "aws-session-token": "AWS session tokens",
    "gcp-service-account": "GCP service-account key files",
    "gcp-refresh-token": "GCP authorized-user credentials (application default credentials)",
    "azure-connection-string": "Azure storage account keys, shared access keys and SAS signatures",
    "github-token": "GitHub tokens (classic and fine-grained)",
    "gitlab-token": "GitLab tokens",
    "npm-token": "npm tokens",
    "npmrc-auth": "`_auth` / `_password` entries of .npmrc",
    "pypi-token": "PyPI upload tokens",
    "pypirc-password": "passwords in .pypirc",
    "docker-hub-token": "Docker Hub personal and organisation access tokens",
    "docker-config-auth": "`auth` and `identitytoken` entries of .docker/config.json",
    "slack-token": "Slack tokens and webhooks",
    "stripe-key": "Stripe live secret and restricted keys",
    "netrc-password": "passwords in .netrc",
    "kubeconfig-credential": "tokens, passwords, client keys and secrets of kubeconfig users",
    "url-password": "passwords in URLs (`postgres://user:password@host`)",
    "artifactory-token": "Artifactory tokens and encrypted passwords",
    "cloudant-credential": "Cloudant credentials",
    "discord-token": "Discord bot tokens",
    "ibm-cloud-key": "IBM Cloud IAM keys",
    "ibm-cos-key": "IBM Cloud Object Storage HMAC keys",
    "jwt": "JSON Web Tokens",
    "mailchimp-key": "Mailchimp keys",
    "openai-key": "OpenAI keys",
    "sendgrid-key": "SendGrid keys",
    "softlayer-credential": "SoftLayer credentials",
    "square-secret": "Square OAuth secrets",
    "telegram-token": "Telegram bot tokens",
    "twilio-key": "Twilio keys",
    SECRET_KEYWORD: 'a literal assigned to a secret-sounding name (`password = "..."`)',
    CREDENTIAL_FILE: "well-known credential files (.aws/credentials, .config/gcloud/, .kube/config, "
    ".docker/config.json, .ssh/, .git-credentials, *.p12, *.pfx, *.jks, *.keystore)",
    CREDENTIAL_ENV_FILE: "a file the image ships at a path an ENV names "
    "(GOOGLE_APPLICATION_CREDENTIALS, AWS_SHARED_CREDENTIALS_FILE, KUBECONFIG...)",
    ENV_SECRET: "a literal credential in ENV or a label",
    BUILD_ARG_SECRET: "a credential passed as a build ARG, recorded in the image history",
}


@dataclass(frozen=True, slots=True)
class Hit:
    """A credential found in a text: the rule, where it starts, and a redacted preview."""

    rule: str
    offset: int
    preview: str


# --- redaction --------------------------------------------------------------------------------------


def redact(secret: str) -> str:
    """What may be shown of a secret: `AKIA****MPLE`. At most 8 characters of 16 or more, 4 of 10 to
    15, none of a shorter one; never the whole."""
    value = secret.strip()
    if len(value) >= 16:
        return f"{value[:4]}****{value[-4:]}"
    if len(value) >= 10:
        return f"{value[:2]}****{value[-2:]}"
    return "****"


# --- placeholders -----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    r"""(?ix)^(?:
        x+|\*+|\.+|-+|_+|0+|#+|
        none|null|nil|empty|undefined|unset|false|true|
        change[-_ ]?me|changeit|password|passwd|passw0rd|pass|pwd|secret|token|key|apikey|api[-_]key|
        example|sample|dummy|fake|test|testing|demo|foo|bar|baz|qux|user|username|admin|root|guest|
        redacted|hidden|masked|placeholder|default|required|optional|string|str|value|
        (?:your|my|the|some)[-_ ]?\w*|\w*[-_]here|
        <.*>|\{.*\}|\[.*\]|\(.*\)|%\(?.*\)?s|%s|\$.*|@.*@|
        .*(?:\*{3}|\.\.\.|\u2026).*
    )$"""
)
# A plain word (`passwd: files` in nsswitch.conf, `secret: required`): a keyword's value only.
_WORD = re.compile(r"^(?:[a-z]{1,15}|[A-Z][a-z]{1,14}|[A-Z]{1,15})$")
_IDENTIFIER_LIKE = re.compile(r"^[a-z]+(?:[_.-][a-z]+)+$|^[A-Z]+(?:_[A-Z]+)+$")


def is_placeholder(value: str) -> bool:
    """A value that stands for a credential rather than being one: empty, a template (`${X}`,
    `{{x}}`, `<password>`, `%(pw)s`), a reference (`$VAR`), a stock word (`changeme`, `xxx`,
    `your-token`, `password`), an elided or redacted value (`AKIA****MPLE`, `ghp_...`), or a name
    (`ca_bundle`, `DB_PASSWORD`)."""
    text = value.strip().strip("\"'`")
    if len(text) < 4 or _PLACEHOLDER.match(text) or _IDENTIFIER_LIKE.match(text):
        return True
    if "{{" in text or "${" in text or text.startswith(("/", "./", "~/", "file:")):
        return True
    return not any(c.isalnum() for c in text)


# --- detect-secrets, lazily -------------------------------------------------------------------------

# detect-secrets detector -> rule id. Unlisted detectors are not used: the high-entropy-string
# detectors (hashes, digests and nonces in ordinary files make them wrong more often than right),
# the public-IP detector (not a credential) and the private-key detector (a header alone is no key:
# `dockyard.credentials.pem` judges the material).
_DETECTORS: Final = {
    "AWSKeyDetector": "aws-access-key",
    "AzureStorageKeyDetector": "azure-connection-string",
    "BasicAuthDetector": "url-password",
    "GitHubTokenDetector": "github-token",
    "GitLabTokenDetector": "gitlab-token",
    "NpmDetector": "npm-token",
    "PypiTokenDetector": "pypi-token",
    "SlackDetector": "slack-token",
    "StripeDetector": "stripe-key",
    "ArtifactoryDetector": "artifactory-token",
    "CloudantDetector": "cloudant-credential",
    "DiscordBotTokenDetector": "discord-token",
    "IbmCloudIamDetector": "ibm-cloud-key",
    "IbmCosHmacDetector": "ibm-cos-key",
    "JwtTokenDetector": "jwt",
    "MailchimpDetector": "mailchimp-key",
    "OpenAIDetector": "openai-key",
    "SendGridDetector": "sendgrid-key",
    "SoftlayerDetector": "softlayer-credential",
    "SquareOAuthDetector": "square-secret",
    "TelegramBotTokenDetector": "telegram-token",
    "TwilioKeyDetector": "twilio-key",
}
# Detectors with a literal start: anchors that precede every match of theirs (the `tokens` tier
# looks for these first). Literal anchors only: an alternation or a character class first makes the
# regular-expression engine try every position, ten times slower over a layer of text.
_ANCHORED: Final = {
    "AWSKeyDetector": (rb"A(?:KIA|SIA|BIA|CCA|3T)",),
    "AzureStorageKeyDetector": (rb"AccountKey=",),
    "BasicAuthDetector": (rb"://",),
    "GitHubTokenDetector": (rb"gh[pousr]_",),
    "GitLabTokenDetector": (rb"gl(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-", rb"GR1348941"),
    "NpmDetector": (rb"_authToken",),
    "PypiTokenDetector": (rb"pypi-AgE",),
    "SlackDetector": (rb"xox[abposrABPOSR]-", rb"hooks\.slack\.com"),
    "StripeDetector": (rb"k_live_",),
}
# Detectors that try an assignment at every position (slow over a whole file): the `loose` tier runs
# them only on the lines where their gate matches in the lowercased text. A gate matches a part of every
# match of its detector, whatever its case (detect-secrets' expressions ignore case; Artifactory's do
# not, and its gate is merely wider there), so a line without it cannot match. Each is led by a word
# rather than a run of characters: the engine finds a word far faster than it tries a run at every
# position (a sixth of the time over the project's own package, which is what the loose tier reads).
_GATES: Final = {
    "ArtifactoryDetector": rb"akc|ap[\da-f]",
    "CloudantDetector": rb"cl(?:oudant|ou)?[_-]?(?:api)?(?:key|pw|pass|token)|cloudant\.com",
    "IbmCloudIamDetector": (
        rb"(?:key|pwd|pass(?:word)?|token)[\"'\]]* *(?:=|:|:=|=>| +|::) *[\"']?[a-z0-9_\-]{44}"
    ),
    "IbmCosHmacDetector": rb"secret[-_]?(?:access)?[-_]?key",
    "SoftlayerDetector": rb"(?:softlayer|sl)[_-]?(?:api)?[_-]?(?:key|pwd|pass|token)|api.softlayer.com",
}
# Words (lowercase) one of which every match of a detector holds: the `loose` tier skips a detector
# whose words are not in a file at all (a membership test on the lowercased text, far cheaper than
# the detector's own expression over the whole of it).
_NEEDS: Final = {
    "JwtTokenDetector": (b"eyj",),
    "MailchimpDetector": (b"-us",),
    "OpenAIDetector": (b"t3blbkfj",),
    "SendGridDetector": (b"sg.",),
    "SquareOAuthDetector": (b"sq0csp-",),
    "TwilioKeyDetector": (b"ac", b"sk"),
    "AWSKeyDetector": (b"aws",),
}
# Expressions of an anchored detector that its anchors do not precede: the `loose` tier only.
_UNANCHORED_EXPRESSIONS: Final = frozenset({("AWSKeyDetector", 1)})
# (detector, expression index) -> (rule id, the group that is the secret) where not (its rule, 0).
_EXPRESSION: Final = {
    ("AWSKeyDetector", 1): ("aws-secret-key", 1),
    ("BasicAuthDetector", 0): ("url-password", 1),
    ("NpmDetector", 0): ("npm-token", 1),
}
# Detectors whose match is a placeholder as often as a secret: their values go through is_placeholder.
_FILTERED: Final = frozenset({"BasicAuthDetector", "CloudantDetector", "IbmCloudIamDetector",
                              "IbmCosHmacDetector", "SoftlayerDetector"})  # fmt: skip


class _DetectSecrets:
    """The parts of detect-secrets the rules use, imported once, on first use (it is not needed by
    commands that scan no content)."""

    def __init__(self) -> None:
        # Imported here, not at the top: only a content scan needs detect-secrets.
        from detect_secrets.core.plugins import util  # noqa: PLC0415
        from detect_secrets.filters import heuristic  # noqa: PLC0415
        from detect_secrets.plugins import base, keyword  # noqa: PLC0415
        from detect_secrets.util import filetype  # noqa: PLC0415

        mapping: Mapping[str, type[base.BasePlugin]] = util.get_mapping_from_secret_type_to_class()
        self.classes: dict[str, type[RegexBasedDetector]] = {
            cls.__name__: cls for cls in mapping.values() if issubclass(cls, base.RegexBasedDetector)
        }
        self.base_analyze_string = base.RegexBasedDetector.analyze_string
        self.keyword = keyword
        self.heuristic = heuristic
        self.filetype = filetype


# --- rules ------------------------------------------------------------------------------------------

Finder = Callable[[str], Iterator[tuple[int, str]]]  # a line -> (position, secret) pairs


@dataclass(frozen=True)
class _Rule:
    rule: str
    find: Finder
    filtered: bool = False  # values go through is_placeholder
    gate: re.Pattern[bytes] | None = None  # the loose tier runs it only on lines this matches (lowercased)
    needs: tuple[bytes, ...] = ()  # lowercase words one of which its match always holds


def _regex_finder(pattern: re.Pattern[str], group: int = 0) -> Finder:
    def find(line: str) -> Iterator[tuple[int, str]]:
        for match in pattern.finditer(line):
            value = match.group(group) or match.group(0)
            yield match.start(group) if match.group(group) else match.start(), value

    return find


def _expression_finder(
    detector: RegexBasedDetector, pattern: re.Pattern[str], group: int, validates: bool
) -> Finder:
    """One of detect-secrets' own expressions of `detector`, with the detector's own validation
    when it has one (`validates`: the JWT detector's `analyze_string` checks the token decodes)."""

    def find(line: str) -> Iterator[tuple[int, str]]:
        valid = set(detector.analyze_string(line)) if validates else None
        for match in pattern.finditer(line):
            at = group if match.group(group) else 0
            value = match.group(at)
            if valid is None or value in valid:
                yield match.start(at), value

    return find


_AWS_SECRET = re.compile(
    r"(?i)secret_?access_?key[\"']?\s*(?:=|:|=>)\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
)
_AWS_SESSION = re.compile(r"(?i)session_?token[\"']?\s*(?:=|:|=>)\s*[\"']?([A-Za-z0-9/+=]{100,})")
_GITHUB_PAT = re.compile(r"github_pat_[A-Za-z0-9_]{82}")
_NPM_TOKEN = re.compile(r"(?<![A-Za-z0-9_])npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])")
_NPMRC_AUTH = re.compile(r"(?:^|[\s:])_(?:auth|password)\s*=\s*[\"']?([A-Za-z0-9+/=]{8,})")
_DOCKER_HUB = re.compile(r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,}")
_DOCKER_AUTH = re.compile(r"\"(auth|identitytoken)\"\s*:\s*\"([^\"\s]{8,})\"")
_AZURE_SAK = re.compile(r"SharedAccessKey=([A-Za-z0-9+/]{42,43}=?)")
_AZURE_SAS = re.compile(r"(?:^|[?&;\"'\s])sig=([A-Za-z0-9%+/=]{40,})")


def _docker_auth(line: str) -> Iterator[tuple[int, str]]:
    """`"auth": base64(user:password)` with a password, or an `"identitytoken"`."""
    for match in _DOCKER_AUTH.finditer(line):
        value = match.group(2)
        if match.group(1) == "auth":
            try:
                _, colon, password = base64.b64decode(value, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                continue
            if not colon or not password:
                continue
        yield match.start(2), value


def _azure_sas(line: str) -> Iterator[tuple[int, str]]:
    """A SAS token's signature, on a line that also has a SAS token's version and expiry or rights."""
    if "sv=" in line and ("se=" in line or "sp=" in line):
        for match in _AZURE_SAS.finditer(line):
            yield match.start(1), match.group(1)


# The rules detect-secrets lacks: (anchors for the `tokens` tier, or none: `loose` tier only, rule).
_OWN_RULES: Final[tuple[tuple[tuple[bytes, ...], _Rule], ...]] = (
    ((rb"ecret_access_key", rb"ECRET_ACCESS_KEY", rb"ecretAccessKey"),
     _Rule("aws-secret-key", _regex_finder(_AWS_SECRET, 1))),
    ((), _Rule("aws-session-token", _regex_finder(_AWS_SESSION, 1), needs=(b"session",))),
    ((rb"github_pat_",), _Rule("github-token", _regex_finder(_GITHUB_PAT))),
    ((rb"npm_",), _Rule("npm-token", _regex_finder(_NPM_TOKEN))),
    ((), _Rule("npmrc-auth", _regex_finder(_NPMRC_AUTH, 1), needs=(b"_auth", b"_password"))),
    ((rb"dckr_",), _Rule("docker-hub-token", _regex_finder(_DOCKER_HUB))),
    ((rb"SharedAccessKey=",), _Rule("azure-connection-string", _regex_finder(_AZURE_SAK, 1))),
    ((), _Rule("azure-connection-string", _azure_sas, needs=(b"sig=",))),
    ((), _Rule("docker-config-auth", _docker_auth, needs=(b'"auth"', b'"identitytoken"'))),
)  # fmt: skip


# --- file-level rules -------------------------------------------------------------------------------

_GCP_TYPE = re.compile(r"\"type\"\s*:\s*\"(service_account|authorized_user)\"")
_GCP_KEY_ID = re.compile(r"\"private_key_id\"\s*:\s*\"([0-9a-f]{16,})\"")
_GCP_REFRESH = re.compile(r"\"refresh_token\"\s*:\s*\"([^\"]{16,})\"")
_KUBE_CONFIG = re.compile(r"(?m)^\s*[\"']?kind[\"']?\s*:\s*[\"']?Config\b")
_KUBE_SECRET = re.compile(
    r"(?m)^\s*-?\s*[\"']?(token|password|client-secret|client-key-data|refresh-token|id-token)[\"']?"
    r"\s*:\s*[\"']?([^\s\"']{8,})"
)
_NETRC_PASSWORD = re.compile(r"(?:^|\s)password\s+(\S+)")
_PYPIRC_PASSWORD = re.compile(r"(?m)^\s*password\s*[:=]\s*(\S+)")

NETRC_NAMES: Final = frozenset({".netrc", "_netrc"})
PYPIRC_NAMES: Final = frozenset({".pypirc"})


def file_rules(text: str, name: str) -> list[Hit]:
    """Rules that need the whole of a small file, or its name: GCP credential files, kubeconfig,
    .netrc and .pypirc."""
    hits: list[Hit] = []
    if '"type"' in text and (kind := _GCP_TYPE.search(text)):
        if kind.group(1) == "service_account" and (key_id := _GCP_KEY_ID.search(text)):
            shown = f"private_key_id {redact(key_id.group(1))}"
            hits.append(Hit("gcp-service-account", key_id.start(1), shown))
        elif kind.group(1) == "authorized_user" and (token := _GCP_REFRESH.search(text)):
            hits.append(Hit("gcp-refresh-token", token.start(1), redact(token.group(1))))
    if "Config" in text and "users" in text and _KUBE_CONFIG.search(text):
        for match in _KUBE_SECRET.finditer(text):
            field_name, value = match.group(1), match.group(2)
            if not is_placeholder(value):
                hits.append(Hit("kubeconfig-credential", match.start(2), f"{field_name} {redact(value)}"))
    if name in NETRC_NAMES:
        for match in _NETRC_PASSWORD.finditer(text):
            if not is_placeholder(match.group(1)):
                hits.append(Hit("netrc-password", match.start(1), redact(match.group(1))))
    if name in PYPIRC_NAMES:
        for match in _PYPIRC_PASSWORD.finditer(text):
            if not is_placeholder(match.group(1)):
                hits.append(Hit("pypirc-password", match.start(1), redact(match.group(1))))
    return hits


# --- the rule set -----------------------------------------------------------------------------------

_KEYWORD_LINES = re.compile(  # over the lowercased text: an IGNORECASE alternation is far slower
    rb"api_?key|auth_?key|service_?key|account_?key|db_?key|database_?key|priv_?key|private_?key|"
    rb"client_?key|db_?pass|database_?pass|key_?pass|password|passwd|pwd|secret|contrase"
)
_CONFIG_LIKE = re.compile(r"(?:^|/)(?:\.env[^/]*|[^/.]+|[^/]*\.(?:env|cnf|conf|cfg|ini|properties|toml))$")
_LINE_SPAN: Final = 4096  # bytes either side of an anchor that make up "its line" at most


class RuleSet:
    """The compiled rules; build one per scan (detect-secrets is imported here, on first use)."""

    def __init__(self) -> None:
        ds = self._ds = _DetectSecrets()
        self._anchored: list[tuple[re.Pattern[bytes], tuple[_Rule, ...]]] = []
        self._unanchored: list[_Rule] = []  # what the tokens tier does not run: the loose tier does
        for name, rule_id in _DETECTORS.items():
            cls = ds.classes.get(name)
            if cls is None:  # a detector this detect-secrets release does not have
                continue
            detector = cls()
            validates = cls.analyze_string is not ds.base_analyze_string
            gate = re.compile(_GATES[name]) if name in _GATES else None
            anchored = []
            for index, pattern in enumerate(detector.denylist):
                rule, group = _EXPRESSION.get((name, index), (rule_id, 0))
                finder = _expression_finder(detector, pattern, group, validates)
                made = _Rule(rule, finder, name in _FILTERED, gate, _NEEDS.get(name, ()))
                if name in _ANCHORED and (name, index) not in _UNANCHORED_EXPRESSIONS:
                    anchored.append(made)
                else:
                    self._unanchored.append(made)
            for anchor in _ANCHORED.get(name, ()):
                self._anchored.append((re.compile(anchor), tuple(anchored)))
        for anchors, made in _OWN_RULES:
            if anchors:
                self._anchored += [(re.compile(anchor), (made,)) for anchor in anchors]
            else:
                self._unanchored.append(made)
        self._keyword = ds.keyword.KeywordDetector()

    # tier 1 -----------------------------------------------------------------------------------------

    @staticmethod
    def keys(text: bytes) -> list[Hit]:
        """Real private-key material, in any text or binary."""
        if not any(anchor in text for anchor in pem.KEY_ANCHORS):
            return []
        return [Hit(PRIVATE_KEY, key.offset, key.preview) for key in pem.private_keys(text)]

    # tier 2 -----------------------------------------------------------------------------------------

    def tokens(self, text: bytes) -> list[Hit]:
        """The formats with a literal start: each anchor found is matched on its line."""
        hits: list[Hit] = []
        for anchor, rules in self._anchored:
            position = 0
            while (found := anchor.search(text, position)) is not None:
                start, end = _line_bounds(text, found.start())
                line = text[start:end].decode("latin-1")
                for rule in rules:
                    hits += _apply(rule, line, start)
                position = max(end, found.end())
        return _dedupe(hits)

    # tier 3 -----------------------------------------------------------------------------------------

    def loose(self, text: bytes, path: str, found: Sequence[Hit] = ()) -> list[Hit]:
        """For a file the image's own project ships, on top of the tokens tier: the expressions
        without a literal start over the whole text, the rules by file name, and the secret-keyword
        detector on the lines that name a secret (not on a line where a rule found one: `found`)."""
        decoded = text.decode("latin-1")
        hits: list[Hit] = []
        gated: dict[re.Pattern[bytes], list[tuple[int, str]]] = {}
        low = text.lower()
        for rule in self._unanchored:
            if rule.needs and not any(word in low for word in rule.needs):
                continue
            if rule.gate is None:
                hits += _apply(rule, decoded, 0)
                continue
            if rule.gate not in gated:
                gated[rule.gate] = _lines(low, decoded, rule.gate)  # the same lines: ASCII case only
            for start, line in gated[rule.gate]:
                hits += _apply(rule, line, start)
        hits += file_rules(decoded, path.rpartition("/")[2])
        taken = sorted(hit.offset for hit in (*found, *hits))
        hits += self._keywords(text, low, decoded, path, taken)
        return _dedupe(hits)

    def _keywords(self, text: bytes, low: bytes, decoded: str, path: str, taken: Sequence[int]) -> list[Hit]:
        keyword, heuristic, types = self._ds.keyword, self._ds.heuristic, self._ds.filetype
        filetype = types.determine_file_type(path)
        if filetype is types.FileType.OTHER and _CONFIG_LIKE.search(path):
            filetype = types.FileType.CONFIG
        regexes = keyword.REGEX_BY_FILETYPE.get(filetype, keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP)
        hits: list[Hit] = []
        seen: set[int] = set()
        for match in _KEYWORD_LINES.finditer(low):
            start, end = _line_bounds(text, match.start())
            if start in seen:
                continue
            seen.add(start)
            index = bisect.bisect_left(taken, start)
            if index < len(taken) and taken[index] < end:
                continue  # a more specific rule found this line's secret
            line = decoded[start:end]
            if heuristic.is_indirect_reference(line):
                continue
            for value in self._keyword.analyze_string(line, denylist_regex_to_group=regexes):
                if (
                    is_placeholder(value)
                    or _WORD.match(value)
                    or " " in value.strip()
                    or heuristic.is_templated_secret(value)
                    or heuristic.is_sequential_string(value)
                    or heuristic.is_potential_uuid(value)
                    or heuristic.is_likely_id_string(value, line)
                    or heuristic.is_not_alphanumeric_string(value)
                ):
                    continue
                hits.append(Hit(SECRET_KEYWORD, start + max(line.find(value), 0), redact(value)))
        return hits

    # metadata ---------------------------------------------------------------------------------------

    def in_value(self, value: str) -> list[Hit]:
        """The token formats and private keys in one ENV value, label or history entry."""
        raw = value.encode("utf-8", "replace")
        return _dedupe(self.keys(raw) + self.tokens(raw))


def _apply(rule: _Rule, line: str, base: int) -> list[Hit]:
    hits = []
    for position, value in rule.find(line):
        if rule.filtered and is_placeholder(value):
            continue
        shown = value.removeprefix("AccountKey=")
        hits.append(Hit(rule.rule, base + position, redact(shown)))
    return hits


def _lines(text: bytes, decoded: str, pattern: re.Pattern[bytes]) -> list[tuple[int, str]]:
    """The lines of `text` where `pattern` matches: (start, line)."""
    out: list[tuple[int, str]] = []
    position = 0
    while (found := pattern.search(text, position)) is not None:
        start, end = _line_bounds(text, found.start())
        out.append((start, decoded[start:end]))
        position = max(end, found.end())
    return out


def _line_bounds(text: bytes, at: int) -> tuple[int, int]:
    low = max(0, at - _LINE_SPAN)
    start = text.rfind(b"\n", low, at) + 1 or low
    end = text.find(b"\n", at, at + _LINE_SPAN)
    return start, (end if end != -1 else min(len(text), at + _LINE_SPAN))


def _dedupe(hits: Iterable[Hit]) -> list[Hit]:
    seen: set[tuple[str, int]] = set()
    out = []
    for hit in sorted(hits, key=lambda h: (h.offset, h.rule)):
        if (hit.rule, hit.offset) not in seen:
            seen.add((hit.rule, hit.offset))
            out.append(hit)
    return out


@cache
def rule_set() -> RuleSet:
    """The process's one compiled rule set."""
    return RuleSet()
