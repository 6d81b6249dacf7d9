"""Project sources: turn a URI (+ version, #subdirectory) into a directory and its provenance.

``resolve()`` is the only entry point used by the runner.  It returns a ``ResolvedSource`` whose
``project_dir`` holds the project files and whose fields feed MLflow's ``mlflow.source.*`` tags.
The caller must call ``cleanup()`` when the run is over (a no-op for a local directory run in
place; removes the checkout of a Git revision unless ``keep_checkout``).

Modules: ``uri`` (parsing and validation), ``local`` (directories and local repositories),
``git`` (remotes through a locked mirror cache), ``cache`` (cache layout, locks, prune),
``tree`` (revisions, exports, submodules), ``archive`` (.zip), ``credentials``, ``redact``.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlproj.tags import (
    GIT_BRANCH,
    GIT_COMMIT,
    GIT_DIFF_SHA256,
    GIT_DIRTY,
    GIT_REPO_URL,
    GIT_REPO_URL_LEGACY,
    SOURCE_NAME,
    SOURCE_SUBDIRECTORY,
    SOURCE_TYPE,
    SOURCE_URI,
    SOURCE_VERSION,
)


@dataclass
class ResolvedSource:
    """A resolved project source: where its files are, the commit and tags that name it, and its clean-up."""

    uri: str                      # the URI as given, credentials removed
    project_dir: Path             # the directory holding the project (root / subdirectory)
    root: Path                    # the checkout root
    subdirectory: str = ''        # '' = the root
    commit: str | None = None     # full SHA of the commit that was run
    repo_url: str | None = None   # remote URL, credentials removed
    branch: str | None = None     # only when the version named a branch
    version: str | None = None    # the revision expression as requested
    is_remote: bool = False
    dirty: bool = False
    diff_hash: str | None = None  # sha256 of the uncommitted diff of a dirty local tree
    source_name: str = ''         # value of mlflow.source.name
    origin_uri: str | None = None  # re-resolvable URI without fragment/credentials (mlproj reproduce)
    _cleanup: Callable[[], None] | None = field(default=None, repr=False)
    _before_cleanup: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def temporary(self) -> bool:
        """The project runs from a checkout that ``cleanup()`` removes."""
        return self._cleanup is not None

    def before_cleanup(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once, when the run is over and before its checkout is removed."""
        self._before_cleanup.append(fn)

    def cleanup(self) -> None:
        hooks, self._before_cleanup = self._before_cleanup, []
        for hook in hooks:
            try:
                hook()
            except Exception as e:  # a bookkeeping hook never hides the run's own outcome
                import sys

                print(f'mlproj: warning: {e}', file=sys.stderr)
        fn, self._cleanup = self._cleanup, None
        if fn is not None:
            fn()

    def tags(self) -> dict[str, str]:
        """MLflow's source tags (plus mlproj's own) for this source."""
        tags = {SOURCE_NAME: self.source_name, SOURCE_TYPE: 'PROJECT'}
        if self.commit:
            tags[GIT_COMMIT] = self.commit
        if self.repo_url:
            tags[GIT_REPO_URL] = self.repo_url
            tags[GIT_REPO_URL_LEGACY] = self.repo_url
        if self.branch:
            tags[GIT_BRANCH] = self.branch
        if self.subdirectory:
            tags[SOURCE_SUBDIRECTORY] = self.subdirectory
        if self.version:
            tags[SOURCE_VERSION] = self.version
        if self.commit:
            tags[GIT_DIRTY] = 'true' if self.dirty else 'false'
        if self.diff_hash:
            tags[GIT_DIFF_SHA256] = self.diff_hash
        if self.origin_uri:
            tags[SOURCE_URI] = self.origin_uri
        return tags


def resolve(uri: str, version: str | None = None, *, keep_checkout: bool = False,
            require_clean: bool = False, cwd: str | None = None) -> ResolvedSource:
    """Resolve ``uri`` (local path, ``file://``, Git remote; ``#subdir`` allowed) to a directory.

    ``version`` is any revision expression (branch, tag, full or short SHA, ``HEAD~2``,
    ``v1.2^{commit}``); the full SHA it resolves to is recorded.
    """
    from mlproj.source.uri import check_revision, parse

    parsed = parse(uri, cwd or os.getcwd())
    rev = check_revision(version)
    if parsed.archive:
        from mlproj.source.archive import resolve_zip

        return resolve_zip(parsed, rev, keep_checkout=keep_checkout)
    if parsed.is_remote:
        from mlproj.source.git import resolve_remote

        return resolve_remote(parsed, rev, keep_checkout=keep_checkout)
    from mlproj.source.local import resolve_local

    return resolve_local(parsed, rev, require_clean=require_clean, keep_checkout=keep_checkout)
