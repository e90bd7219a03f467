"""no-credentials: no credential of any kind ships in the image, in a layer the Dockerfile added (also
one a later layer deletes), in ENV, in a label, or in the history (a build ARG's value).

The layers were scanned during the one pass over the export (`dockyard.credentials.layers`); the
image metadata is scanned here with the same rule set. Findings may be waived per path and rule in
`[tool.dockyard.verify] credentials-allow`, with a reason that the report shows. A finding shows its
layer, path, rule and a redacted preview, never the secret.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from dockyard.config import CredentialWaiver
from dockyard.credentials import rules
from dockyard.credentials.layers import Finding
from dockyard.image.metadata import ImageInfo, shorten_instruction
from dockyard.verify.facts import ExportFacts, Facts, Verdict, failed, mb, passed, require

SHOWN: int = 3  # findings named in the one-line evidence

# An ENV, label or build ARG whose name says it holds a secret (by its last word, so TOKEN_TTL or
# PASSWORD_FILE do not count).
_SECRET_NAME = re.compile(
    r"(?i)(?:^|[_.-])(?:PASSWORD|PASSWD|PASS|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|SECRET_?KEY|PRIVATE_?KEY|"
    r"CLIENT_?SECRET|AUTH_?TOKEN|CREDENTIALS?|PAT)$"
)
_ARG_PREFIX = re.compile(r"^(?:RUN )?\|\d+ ((?:[A-Za-z_][A-Za-z0-9_]*=\S* )+)")
_ARG_LINE = re.compile(r"^(?:/bin/sh -c #\(nop\) )?ARG ([A-Za-z_][A-Za-z0-9_]*)=(\S+)")


def check_no_credentials(facts: Facts) -> Verdict:
    export = require(facts.export)
    scan = require(export.credentials)
    findings = [*scan.findings, *metadata_findings(facts.image, export)]
    kept, waived = apply_waivers(findings, facts.settings.verify.credentials_allow)
    notes = _notes(facts, export)
    waived_lines = [f"waived: {describe(f)}: {waiver.reason}" for f, waiver in waived]
    if kept:
        shown = ", ".join(f"{f.where} ({f.rule} {f.preview})" for f in kept[:SHOWN])
        more = f" and {len(kept) - SHOWN} more" if len(kept) > SHOWN else ""
        return failed(
            f"{len(kept)} credential{'s' if len(kept) > 1 else ''} in the image: {shown}{more}",
            *(describe(f) for f in kept),
            *waived_lines,
            *notes,
        )
    layers = len(scan.layers)
    scanned = f"{layers} added layer{'s' if layers != 1 else ''} ({scan.files} files, {mb(scan.bytes)})"
    evidence = (
        f"{scanned}, ENV, labels and history: no private keys, cloud or registry credentials, tokens "
        "or passwords"
    )
    if waived:
        evidence += f"; {len(waived)} waived"
    return passed(evidence, *waived_lines, *notes)


def describe(finding: Finding) -> str:
    """One line per finding: where it is, which rule, a redacted preview (never the secret)."""
    if finding.layer is None:
        return f"{finding.where}: {finding.rule} {finding.preview}"
    gone = ""
    if finding.removed_in is not None:
        gone = f" (layer {finding.removed_in} deletes it; it stays in the image)"
    layer = f"layer {finding.layer} ({finding.diff_id.removeprefix('sha256:')[:12]})"
    return f"{layer} {finding.where}: {finding.rule} {finding.preview}{gone}"


def apply_waivers(
    findings: Sequence[Finding], waivers: Sequence[CredentialWaiver]
) -> tuple[list[Finding], list[tuple[Finding, CredentialWaiver]]]:
    """(findings no waiver covers, (finding, waiver) pairs). A waiver covers a finding when its rule
    is the finding's (or "*") and its path glob matches the finding's path."""
    kept: list[Finding] = []
    waived: list[tuple[Finding, CredentialWaiver]] = []
    for finding in findings:
        waiver = next(
            (
                w
                for w in waivers
                if w.rule in ("*", finding.rule) and fnmatch.fnmatchcase(finding.path, w.path)
            ),
            None,
        )
        if waiver is None:
            kept.append(finding)
        else:
            waived.append((finding, waiver))
    return kept, waived


def metadata_findings(image: ImageInfo, export: ExportFacts) -> list[Finding]:
    """Credentials in the ENV and labels the Dockerfile set, and in its history entries (a RUN's
    text, and the values of build ARGs recorded there)."""
    found: list[Finding] = []
    for name, value in sorted(image.env.items()):
        if export.base_env.get(name) != value:
            found += _in_value(f"ENV {name}", name, value, rules.ENV_SECRET)
    for name, value in sorted(image.labels.items()):
        if export.base_labels.get(name) != value:
            found += _in_value(f"LABEL {name}", name, value, rules.ENV_SECRET)
    for number, entry in enumerate(image.history[export.base_history :], start=export.base_history + 1):
        # the instruction's kind only: its text may hold the very secret found in it
        kind = shorten_instruction(entry.created_by or entry.comment).partition(" ")[0] or "?"
        where = f"history #{number} ({kind})"
        for name, value in _build_args(entry.created_by):
            found += _named(where + f" ARG {name}", name, value, rules.BUILD_ARG_SECRET)
        found += [
            Finding(hit.rule, where, hit.preview)
            for hit in rules.rule_set().in_value(entry.created_by)
            if not any(f.path.startswith(where) for f in found)
        ]
    return found


def _in_value(where: str, name: str, value: str, rule: str) -> list[Finding]:
    hits = rules.rule_set().in_value(value)
    if hits:
        return [Finding(hit.rule, where, hit.preview) for hit in hits]
    return _named(where, name, value, rule)


def _named(where: str, name: str, value: str, rule: str) -> list[Finding]:
    """A literal value under a secret-sounding name: `ENV DB_PASSWORD=hunter2`."""
    if not _SECRET_NAME.search(name) or rules.is_placeholder(value) or value.strip().isdigit():
        return []
    if "://" in value and "@" not in value:  # a URL without credentials (url-password covers the rest)
        return []
    return [Finding(rule, where, rules.redact(value))]


def _build_args(created_by: str) -> list[tuple[str, str]]:
    """The build ARG values a history entry records: `|2 A=1 B=2 /bin/sh -c ...`, `ARG A=1`."""
    out: list[tuple[str, str]] = []
    prefix = _ARG_PREFIX.match(created_by)
    if prefix:
        for pair in prefix.group(1).split():
            name, _, value = pair.partition("=")
            out.append((name, value))
    line = _ARG_LINE.match(created_by)
    if line:
        out.append((line.group(1), line.group(2)))
    return out


def _notes(facts: Facts, export: ExportFacts) -> list[str]:
    scan = require(export.credentials)
    notes = []
    if export.base_layers == 0:
        why = facts.base.note if facts.base and facts.base.note else "base image unknown"
        notes.append(f"every layer was scanned as the Dockerfile's: {why}")
    if scan.exempt:
        notes.append(
            f"{scan.exempt} match{'es' if scan.exempt != 1 else ''} in files of installed distributions "
            f"({scan.owned} files, known from their RECORD and dpkg lists) not reported: not private-key "
            "material, or in their tests or documentation"
        )
    if scan.over_budget:
        notes.append(
            f"{scan.over_budget} text files past the scan's budget got the anchored token and key rules only"
        )
    notes.append(f"layers read from {export.source}")
    return notes
