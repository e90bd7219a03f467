"""What a check run produces: one result per check, and a report over them.

These are the models every reporter (table, JSON, JUnit, Markdown) renders; checks of images and of
compose services both produce them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"  # the check could not run (timeout, engine error): counts as a failure


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one subject, with the evidence that decided it."""

    check_id: str  # stable id, e.g. "non-root"
    title: str  # one-line purpose
    outcome: Outcome
    evidence: str  # one line: what was seen
    details: tuple[str, ...] = ()  # further lines shown on failure (a health log, a package list)
    seconds: float = 0.0
    subject: str = ""  # what was checked: an image reference or a compose service

    @property
    def failed(self) -> bool:
        return self.outcome in (Outcome.FAIL, Outcome.ERROR)


@dataclass(frozen=True)
class Report:
    """All results of one run, in check order."""

    title: str  # e.g. "verify-image dockyard:0.1.0"
    results: tuple[CheckResult, ...]
    seconds: float = 0.0
    meta: dict[str, str] = field(default_factory=dict)  # image id, size, engine version...

    @property
    def ok(self) -> bool:
        return not any(r.failed for r in self.results)

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)
