"""What git says about the project: the commit, whether the tree is dirty, whether a file is committed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dockyard import process
from dockyard.errors import CommandError


@dataclass(frozen=True)
class GitState:
    sha: str | None  # short commit id; None outside a repository or before the first commit
    dirty: bool
    commit_time: int | None  # committer time, seconds since the epoch

    @property
    def revision_tag(self) -> str | None:
        if self.sha is None:
            return None
        return f"{self.sha}-dirty" if self.dirty else self.sha


def _git(directory: Path, *args: str) -> process.Completed:
    # --no-optional-locks: `git status` must not refresh and rewrite .git/index, which a build context
    # holding .git would see as a change.
    return process.run(["git", "--no-optional-locks", "-C", str(directory), *args], timeout=60, check=False)


def state(directory: Path) -> GitState:
    head = _git(directory, "log", "-1", "--format=%h %ct")
    if head.returncode != 0 or not head.stdout.strip():
        return GitState(sha=None, dirty=False, commit_time=None)
    sha, _, when = head.stdout.strip().partition(" ")
    status = _git(directory, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return GitState(sha=sha, dirty=bool(status.stdout.strip()), commit_time=int(when))


def toplevel(directory: Path) -> Path | None:
    """The root of the git work tree holding `directory`; None outside one (or without git)."""
    try:
        done = _git(directory, "rev-parse", "--show-toplevel")
    except CommandError:  # no git installed
        return None
    text = done.stdout.strip()
    return Path(text).resolve() if done.returncode == 0 and text else None


def is_tracked(directory: Path, path: str) -> bool:
    return _git(directory, "ls-files", "--error-unmatch", "--", path).returncode == 0


def has_uncommitted_changes(directory: Path, path: str) -> bool:
    return _git(directory, "diff", "--quiet", "HEAD", "--", path).returncode != 0


def list_files(directory: Path) -> list[str]:
    """Files git tracks plus untracked ones it does not ignore, relative to `directory`."""
    done = _git(directory, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    if done.returncode != 0:
        raise CommandError(
            f"{directory} is not a git work tree: {done.output}",
            argv=done.argv, returncode=done.returncode, output=done.output,
        )  # fmt: skip
    return [name for name in done.stdout.split("\0") if name]


def export_head(directory: Path, destination: Path) -> None:
    """The committed tree at HEAD, written to `destination` (no untracked or modified files)."""
    archive = destination / ".head.tar"
    process.run(
        ["git", "-C", str(directory), "archive", "--format=tar", "-o", str(archive), "HEAD"],
        timeout=120,
        what="git archive HEAD",
    )
    process.run(["tar", "-xf", archive.name], cwd=destination, timeout=120, what="unpacking HEAD")
    archive.unlink()


def source_url(directory: Path) -> str | None:
    """The repository's public address, from the `origin` remote, for the OCI `source` label."""
    done = _git(directory, "remote", "get-url", "origin")
    return public_url(done.stdout.strip()) if done.returncode == 0 else None


def public_url(remote: str) -> str | None:
    """`git@host:acme/app.git` or `https://user:token@host/acme/app.git` as `https://host/acme/app`:
    never the credentials; None for a local path."""
    if "://" in remote:
        parts = urlsplit(remote)
        if parts.scheme not in ("https", "http", "ssh", "git", "git+ssh") or not parts.hostname:
            return None
        scheme = "http" if parts.scheme == "http" else "https"
        port = f":{parts.port}" if parts.port and scheme == parts.scheme else ""
        path = parts.path
    elif match := re.fullmatch(r"(?:[^@/]+@)?([A-Za-z0-9.-]+):(?!/)(.+)", remote):
        scheme, port, path = "https", "", "/" + match.group(2)
        parts = urlsplit(f"https://{match.group(1)}")
    else:
        return None
    path = path.rstrip("/").removesuffix(".git")
    return f"{scheme}://{parts.hostname}{port}{path}" if path else None
