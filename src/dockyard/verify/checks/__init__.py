"""The image checklist, in report order: each check is a pure function of the gathered facts.

One module per family: `build` (how the image is made), `runtime` (how it runs), `python` (the
environment the app runs in), `files` (what the image ships), `toolchain` (no build tools at runtime),
`credentials` (what it must not ship).
"""

from __future__ import annotations

from dockyard.verify.checks.build import check_builds, check_layer_cache, check_lock_current, check_size
from dockyard.verify.checks.credentials import check_no_credentials
from dockyard.verify.checks.files import check_no_build_secrets, check_no_stray_files
from dockyard.verify.checks.python import (
    check_imports,
    check_locked_runtime,
    check_no_dev_packages,
    check_smoke,
)
from dockyard.verify.checks.runtime import check_healthcheck, check_non_root, check_runtime_env
from dockyard.verify.checks.toolchain import check_no_build_tools
from dockyard.verify.facts import Check

CHECKS: tuple[Check, ...] = (
    Check("builds", "the image builds from the project's Dockerfile", (), check_builds),
    Check("non-root", "the image runs as a non-root user it declares", ("probe",), check_non_root,
          probe=("privileged",)),
    Check("size", "the image is within the size budget", (), check_size),
    Check("no-dev-packages", "no development-only package from uv.lock is installed",
          ("probe",), check_no_dev_packages, optional=("locked",), probe=("environments",)),
    Check("locked-runtime", "the app's environment holds exactly the locked runtime set",
          ("probe", "locked"), check_locked_runtime, probe=("environments", "records")),
    Check("imports", "the app's modules import as the image's user", ("probe",), check_imports,
          probe=("imports",)),
    Check("smoke", "smoke commands succeed in the image", ("probe",), check_smoke,
          probe=("commands",)),
    Check("healthcheck", "a service's HEALTHCHECK can fail, gets healthy and stays so", ("health",),
          check_healthcheck, probe=("commands",)),
    Check("runtime-env", "Python runtime settings, PATH, exec-form commands, ports", ("probe",),
          check_runtime_env, probe=("environments",)),
    Check("no-stray-files", "no .env, VCS data, tests, host venvs or keys in the image", ("probe",),
          check_no_stray_files, probe=("strays",)),
    Check("no-build-tools", "no build toolchain (uv, pip, compilers, -dev headers, builder source)",
          ("probe",), check_no_build_tools, optional=("locked",), probe=("build_tools",)),
    Check("no-build-secrets", "build secrets appear in no layer, history entry, ENV or label",
          ("export",), check_no_build_secrets),
    Check("no-credentials", "no private key, token, password or cloud credential ships in the image",
          ("export",), check_no_credentials),
    Check("lock-current", "uv.lock is current with pyproject.toml and committed", ("lock_status",),
          check_lock_current),
    Check("layer-cache", "a source-only change reuses the dependency layers", ("cache",),
          check_layer_cache),
)  # fmt: skip

CHECK_IDS = tuple(check.id for check in CHECKS)
