"""Git remotes through pygit2: a locked bare mirror per remote, fetch only what is missing.

* A full 40/64-hex SHA already in the mirror is used without any network access.
* Anything else (branch, tag, short SHA, ``HEAD~2``, no version) fetches ``refs/heads/*`` and
  ``refs/tags/*`` into the mirror first (one connection: ref advertisement + pack), then
  resolves locally, so every ``rev-parse`` expression works and the full SHA is recorded.
* The first clone is shallow (depth 1, as fast as MLflow's clone); the first revision it cannot
  resolve (``HEAD~2``, an old SHA) completes the history once (``MLPROJ_GIT_FULL_CLONE=1``
  clones everything up front).
* A full SHA that no ref reaches is asked for directly (servers with
  ``uploadpack.allowReachableSHA1InWant``/``allowAnySHA1InWant``, as GitHub).
* The run's checkout is a Git working tree borrowing the mirror's objects read-only
  (``worktree.py``), made under the mirror lock; submodules after it is released.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mlproj import verbose
from mlproj.errors import SourceError, first_line
from mlproj.source import ResolvedSource
from mlproj.source.cache import CloneCache, Mirror
from mlproj.source.credentials import Secrets, make_callbacks
from mlproj.source.redact import redact
from mlproj.source.tree import (
    Revision,
    Submodule,
    export_commit,
    export_submodules,
    find_commit,
    has_commit,
)
from mlproj.source.uri import ParsedURI, is_full_sha
from mlproj.source.worktree import make_worktree

REFSPECS = ('+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*')
UNSHALLOW = 2147483647   # libgit2's GIT_FETCH_DEPTH_UNSHALLOW
DEFAULT_CONNECT_TIMEOUT_MS = 15_000
DEFAULT_IO_TIMEOUT_MS = 120_000
_applied: tuple[str, ...] | None = None


def configure_libgit2() -> None:
    """Timeouts and TLS trust (libgit2 settings are process-global; re-applied when the env changes)."""
    global _applied
    import pygit2

    wanted = tuple(os.environ.get(k, '') for k in ('MLPROJ_GIT_TIMEOUT', 'GIT_SSL_CAINFO', 'SSL_CERT_FILE',
                                                   'GIT_SSL_CAPATH', 'SSL_CERT_DIR'))
    if wanted == _applied:
        return
    try:
        seconds = float(wanted[0] or 0)
    except ValueError:
        seconds = 0
    try:
        pygit2.settings.server_connect_timeout = int(seconds * 1000) if seconds else DEFAULT_CONNECT_TIMEOUT_MS
        pygit2.settings.server_timeout = int(seconds * 1000) if seconds else DEFAULT_IO_TIMEOUT_MS
    except (AttributeError, pygit2.GitError):  # older libgit2
        pass
    cainfo = wanted[1] or wanted[2]
    capath = wanted[3] or wanted[4]
    if cainfo or capath:
        try:
            pygit2.settings.set_ssl_cert_locations(cainfo or None, capath or None)  # type: ignore[arg-type]
        except pygit2.GitError as e:
            raise SourceError(f'cannot use the CA bundle: {first_line(e)}', cainfo or capath) from None
    _applied = wanted


class Fetcher:
    """Fetches into mirrors for one resolution (shares the secrets seen, for redaction)."""

    def __init__(self, store: CloneCache | None = None, secrets: Secrets | None = None) -> None:
        self.store = store or CloneCache()
        self.secrets = secrets or Secrets()
        # user:password given in the top-level URI also serve submodules on the same host
        self.host_credentials: dict[str, tuple[str, str]] = {}
        self.host_users: dict[str, str] = {}

    def _with_credentials(self, parsed: ParsedURI) -> ParsedURI:
        host = parsed.host.lower()
        if parsed.username and parsed.scheme in ('http', 'https'):
            self.host_users.setdefault(host, parsed.username)
        if parsed.password is not None and parsed.username:
            self.secrets.add(parsed.password)
            self.host_credentials.setdefault(host, (parsed.username, parsed.password))
            return parsed
        if parsed.scheme not in ('http', 'https'):
            return parsed
        known = self.host_credentials.get(host)
        if known:
            return parsed._replace(username=parsed.username or known[0], password=known[1])
        if not parsed.username and host in self.host_users:
            return parsed._replace(username=self.host_users[host])
        return parsed

    def _error(self, parsed: ParsedURI, e: BaseException, prefix: str = 'cannot fetch') -> SourceError:
        return SourceError(f'{prefix}: {redact(first_line(e), self.secrets.values)}', parsed.display)

    # -- mirror maintenance -------------------------------------------------------------
    def _fetch(self, mirror: Mirror, parsed: ParsedURI) -> Any:
        """Create or update the mirror (caller holds the lock); returns the opened repository."""
        import pygit2

        configure_libgit2()
        parsed = self._with_credentials(parsed)
        if mirror.is_valid():
            repo = pygit2.Repository(str(mirror.path))
            self._update(repo, parsed)
            mirror.touch(last_fetch=_now())
            return repo
        staging = mirror.new_staging_dir()
        try:
            repo = pygit2.init_repository(str(staging), bare=True)
            remote = repo.remotes.create('origin', parsed.url, fetch=REFSPECS[0])
            repo.remotes.add_fetch('origin', REFSPECS[1])
            del remote
            self._update(repo, parsed, depth=0 if _full_clone() else 1)
            Mirror(mirror.url, staging).touch(last_fetch=_now(), created=_now())
            repo.free()
            mirror.install(staging)
        except BaseException:
            from mlproj.source.cache import rmtree

            rmtree(staging)
            raise
        return pygit2.Repository(str(mirror.path))

    def _update(self, repo: Any, parsed: ParsedURI, extra: list[str] | None = None, depth: int = 0) -> None:
        """Fetch heads and tags (or just ``extra`` refspecs) into ``repo``; point HEAD at the remote's.

        ``depth`` 1 makes a shallow first clone; ``UNSHALLOW`` completes the history later.
        """
        import pygit2

        remote = repo.remotes['origin']
        if remote.url != parsed.url:  # e.g. the mirror was made when credentials were in the URL
            repo.remotes.set_url('origin', parsed.url)
            remote = repo.remotes['origin']
        parsed = self._with_credentials(parsed)
        from mlproj.source.credentials import FetchProgress

        progress = FetchProgress(parsed.display)
        callbacks = make_callbacks(parsed, self.secrets, repo.config, progress)
        if verbose.active():
            if extra:
                what = ' '.join(extra)
            else:
                what = 'branches and tags' + {1: ' (shallow, depth 1)', UNSHALLOW: ' (the full history)'}.get(depth, '')
            verbose.note(f'git: fetching {what} from {parsed.display} into {repo.path.rstrip("/")}')
        try:
            if extra:
                remote.fetch(extra, message='mlproj: fetch', callbacks=callbacks, proxy=True)
                return
            remote.connect(callbacks=callbacks, proxy=True)
            heads = remote.list_heads(connect=False)
            remote.fetch(list(REFSPECS), message='mlproj: fetch', callbacks=callbacks,
                         prune=pygit2.enums.FetchPrune.PRUNE, proxy=True, depth=depth)
        except SourceError:
            raise
        except (pygit2.GitError, OSError, ValueError, KeyError) as e:
            raise self._error(parsed, e) from None
        finally:
            progress.done()
        got, _total, size = progress.state
        verbose.note(f'git: fetched {got} objects ({size / 1024 ** 2:.1f} MiB) from {parsed.display}')
        if not heads:
            raise SourceError('the remote repository is empty', parsed.display)
        for head in heads:
            if head.name == 'HEAD' and head.symref_target and head.symref_target.startswith('refs/heads/'):
                if head.symref_target in repo.references:
                    repo.set_head(head.symref_target)
                break
        else:  # no symref advertised: take the branch HEAD points at, or main/master
            head_oid = next((h.oid for h in heads if h.name == 'HEAD'), None)
            for name in [h.name for h in heads if h.name.startswith('refs/heads/') and h.oid == head_oid] + \
                    ['refs/heads/main', 'refs/heads/master']:
                if name in repo.references:
                    repo.set_head(name)
                    break

    # -- public operations --------------------------------------------------------------
    def resolve(self, parsed: ParsedURI, rev: str | None) -> tuple[Mirror, Any, Revision, bool]:
        """Locked: bring the mirror up to date as needed and resolve ``rev``.

        Returns (mirror, repo, revision, fetched).  The caller must hold ``mirror.lock()``.
        """
        import pygit2

        mirror = self.store.mirror(parsed.display)
        mirror.clean_stale()
        if rev is not None and is_full_sha(rev) and mirror.is_valid():
            repo = pygit2.Repository(str(mirror.path))
            if has_commit(repo, rev):
                mirror.touch()
                verbose.note(f'git: commit {rev} of {parsed.display} is in the cache ({mirror.path}); not fetching')
                return mirror, repo, Revision(str(repo[rev].peel(pygit2.Commit).id), None), False
        try:
            repo = self._fetch(mirror, parsed)
        except SourceError as e:
            raise self._offline_hint(mirror, parsed, rev, e) from None
        try:
            return mirror, repo, self._find(repo, parsed, rev), True
        except SourceError:
            if not repo.is_shallow:
                raise
        # the shallow first clone lacks this revision: complete the history once, then look again
        self._update(repo, parsed, depth=UNSHALLOW)
        repo = pygit2.Repository(str(mirror.path))
        return mirror, repo, self._find(repo, parsed, rev), True

    def _find(self, repo: Any, parsed: ParsedURI, rev: str | None) -> Revision:
        if rev is not None and is_full_sha(rev) and not has_commit(repo, rev):
            if repo.is_shallow:
                raise SourceError(f'revision {rev!r} not found', parsed.display)
            try:  # not reachable from any ref: ask for the object itself
                self._update(repo, parsed, [rev])
            except SourceError:
                pass
            if not has_commit(repo, rev):
                raise SourceError(f'revision {rev!r} not found', parsed.display)
        return find_commit(repo, rev, parsed.display, self.secrets)

    def _offline_hint(self, mirror: Mirror, parsed: ParsedURI, rev: str | None, error: SourceError) -> SourceError:
        if rev is not None and is_full_sha(rev):  # a cached full SHA never gets here
            return SourceError(f'{error.message}; commit {rev[:12]} is not in the cache', error.where)
        if not mirror.is_valid():
            return error
        import pygit2

        try:
            cached = find_commit(pygit2.Repository(str(mirror.path)), rev, parsed.display)
        except SourceError:
            return error
        return SourceError(f'{error.message}; the cache has {rev or "the default branch"} at {cached.commit[:12]}: '
                           f'run with -v {cached.commit} to use it offline', error.where)

    def ensure_commit(self, parsed: ParsedURI, sha: str, dest: Path) -> Any:
        """Export commit ``sha`` of ``parsed`` into ``dest`` (fetching only if it is not cached)."""
        mirror = self.store.mirror(parsed.display)
        with mirror.lock():
            _mirror, repo, revision, _ = self.resolve(parsed, sha)
            export_commit(repo, revision.commit, dest)
        return repo


def _now() -> float:
    import time

    return time.time()


def _full_clone() -> bool:
    from mlproj.settings import env_value

    return bool(env_value('MLPROJ_GIT_FULL_CLONE'))


def allow_file_submodules() -> bool:
    from mlproj.settings import env_value

    return bool(env_value('MLPROJ_ALLOW_FILE_SUBMODULES'))


def export_submodules_from(fetcher: Fetcher, repo: Any, sha: str, dest: Path, base_url: str, where: str,
                           modules_dir: Path | None = None, depth: int = 0, *, remote: bool = False) -> None:
    """Export the submodules of ``sha`` (recursively), from ``modules_dir`` or the clone cache.

    ``remote``: the superproject came from a remote.  Its submodules may then not name a local
    path or ``file://`` URL (a remote repository must not pull in repositories of this machine;
    Git >= 2.38.1 refuses the same with ``protocol.file.allow=user``) unless
    ``MLPROJ_ALLOW_FILE_SUBMODULES=1``.  Relative URLs resolve against the remote and stay remote.
    """
    import pygit2

    from mlproj.source.uri import parse

    def export_one(sub: Submodule, url: str, target: Path, level: int) -> None:
        if modules_dir is not None:
            local = modules_dir / sub.name
            if (local / 'HEAD').is_file():
                try:
                    local_repo = pygit2.Repository(str(local))
                except pygit2.GitError:
                    local_repo = None
                if local_repo is not None and has_commit(local_repo, sub.commit):
                    export_commit(local_repo, sub.commit, target)
                    export_submodules_from(fetcher, local_repo, sub.commit, target, url, where,
                                           local / 'modules', level, remote=remote)
                    return
        try:
            sub_parsed = parse(url, cwd=os.getcwd())
        except SourceError as e:
            raise SourceError(f'submodule {sub.path!r}: {e.message}', e.where or where) from None
        if sub_parsed.is_remote:
            sub_repo = fetcher.ensure_commit(sub_parsed, sub.commit, target)
            child_modules = None
        else:
            if remote and not allow_file_submodules():
                raise SourceError(f'submodule {sub.path!r} of a remote repository points at a local path; refused '
                                  '(set MLPROJ_ALLOW_FILE_SUBMODULES=1 to allow it)', where)
            sub_repo = _open_local(sub_parsed.url, where)
            if not has_commit(sub_repo, sub.commit):
                raise SourceError(f'submodule {sub.path!r}: commit {sub.commit[:12]} not found in {sub_parsed.url}',
                                  where)
            export_commit(sub_repo, sub.commit, target)
            child_modules = Path(sub_repo.path) / 'modules'
        export_submodules_from(fetcher, sub_repo, sub.commit, target, url, where, child_modules, level,
                               remote=sub_parsed.is_remote)

    export_submodules(repo, sha, dest, base_url, where, export_one, depth)


def _open_local(path: str, where: str) -> Any:
    import pygit2

    try:
        found = pygit2.discover_repository(path)
        if found is None:
            raise KeyError(path)
        return pygit2.Repository(found)
    except (pygit2.GitError, KeyError):
        raise SourceError(f'{path} is not a Git repository', where) from None


def resolve_remote(parsed: ParsedURI, rev: str | None, *, keep_checkout: bool = False) -> ResolvedSource:
    from mlproj.source.tree import contained_subdirectory

    fetcher = Fetcher()
    store = fetcher.store
    try:
        mirror = store.mirror(parsed.display)
        with mirror.lock():
            _m, repo, revision, _fetched = fetcher.resolve(parsed, rev)
            checkout = store.new_checkout(revision.commit, parsed.display, keep_checkout)
            try:
                make_worktree(repo, revision.commit, checkout, origin_url=parsed.display,
                              cone=[parsed.subdirectory] if parsed.subdirectory else None)
            except BaseException:
                store.remove_checkout(checkout)
                raise
        try:
            export_submodules_from(fetcher, repo, revision.commit, checkout, parsed.url, parsed.display,
                                   remote=True)
            project_dir = contained_subdirectory(checkout, parsed.subdirectory,
                                                 f'{parsed.display} at {revision.commit[:12]}')
        except BaseException:
            store.remove_checkout(checkout)
            raise
    except SourceError as e:
        raise SourceError(redact(e.message, fetcher.secrets.values),
                          redact(e.where, fetcher.secrets.values) if e.where else None) from None
    if keep_checkout:
        print(f'mlproj: checkout of {revision.commit[:12]} kept at {checkout}', file=sys.stderr)
    verbose.note(f'git: {rev or "the default branch"} of {parsed.display} resolved to commit {revision.commit}'
                 + (f' (branch {revision.branch})' if revision.branch else ''))
    source_name = parsed.display + (f'#{parsed.subdirectory}' if parsed.subdirectory else '')
    return ResolvedSource(
        uri=source_name, project_dir=project_dir, root=checkout, subdirectory=parsed.subdirectory,
        commit=revision.commit, repo_url=parsed.display, branch=revision.branch, version=rev, is_remote=True,
        source_name=source_name, origin_uri=parsed.display,
        _cleanup=None if keep_checkout else (lambda: store.remove_checkout(checkout)),
    )
