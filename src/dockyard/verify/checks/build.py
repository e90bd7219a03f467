"""Checks of how the image is made: it builds, fits its budget, its lock is current, its layers cache."""

from __future__ import annotations

from dockyard.verify.facts import Facts, Verdict, failed, mb, passed, require, skipped


def check_builds(facts: Facts) -> Verdict:
    built = facts.build
    if built is None:
        return skipped("image given, not built here (run with --build to check the build)")
    how = "from a clean checkout of HEAD" if facts.settings.verify.clean_checkout else "from the tree"
    return passed(
        f"built {how} in {built.seconds:.1f}s: {len(built.steps)} steps, {built.cached_steps} cached"
    )


def check_size(facts: Facts) -> Verdict:
    size, budget = facts.image.size, facts.settings.size_budget
    if size > budget:
        return failed(f"{mb(size)} is {mb(size - budget)} over the {mb(budget)} budget")
    return passed(f"{mb(size)} of {mb(budget)} budget ({mb(budget - size)} to spare)")


def check_lock_current(facts: Facts) -> Verdict:
    status = require(facts.lock_status)
    return passed(status.message) if status.current else failed(status.message)


def check_layer_cache(facts: Facts) -> Verdict:
    cache = facts.cache
    cache = require(cache)
    before, after = cache.layers_before, cache.layers_after
    same = sum(1 for a, b in zip(before, after, strict=False) if a[0] == b[0])
    changed = [layer for layer in after if layer not in before]
    changed_bytes = sum(size for _, size in changed)
    limit = facts.settings.verify.layer_cache_max_changed
    summary = (
        f"after changing {cache.touched}: {len(changed)} of {len(after)} layers changed "
        f"({mb(changed_bytes)}), {same} reused by digest"
    )
    if cache.reinstalled:
        step, count = cache.reinstalled[0]
        return failed(
            f"{summary}; dependencies were installed again ({count} packages in `{step[:80]}`)",
            *(f"{n} packages: {name}" for name, n in cache.reinstalled),
        )
    if changed_bytes > limit:
        return failed(
            f"{summary}: a source-only change ships more than {mb(limit)}",
            *(f"changed layer {d[7:19]} {mb(s)}" for d, s in changed),
        )
    return passed(summary)
