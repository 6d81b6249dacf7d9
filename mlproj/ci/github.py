"""Reporting to GitHub through PyGithub: sticky PR comment, commit status, check run.

* The client talks to ``GITHUB_API_URL`` (GitHub Enterprise Server works the same way) in lazy
  mode, so only the requests that change something are sent: no ``GET /repos/...`` first.
* The sticky comment is found by a hidden marker (one per project + entry point) and edited in
  place; if editing is refused (someone else's comment carrying the marker) a new one is made.
* Check-run annotations go out at most 50 per request: the first batch with the create call,
  the rest as updates, which GitHub appends.
* The token is never printed: errors are reduced to status + GitHub's message, and any text
  that reaches the log is passed through ``redact``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlproj.ci import findings as ann
from mlproj.ci.markdown import (
    CHECK_SUMMARY_CAP,
    COMMENT_CAP,
    Report,
    commit_state,
    conclusion,
    description,
    marker,
    render,
    title,
)
from mlproj.errors import BackendError

# GitHub asks for at least one second between mutating requests (secondary rate limits).
DEFAULT_WRITE_INTERVAL = 1.0


class GitHubError(BackendError):
    """A GitHub API call failed; ``status`` is the HTTP status (0 when unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status

    @property
    def permission(self) -> bool:
        """Refused for lack of permission: read-only token on a fork PR, missing ``permissions:``."""
        return self.status in (401, 403, 404)


@dataclass(frozen=True)
class Target:
    api_url: str
    repository: str          # owner/name
    token: str
    sha: str                 # the commit statuses and check runs attach to (the PR head)
    pr_number: int | None = None


class Reporter:
    def __init__(self, target: Target, *, write_interval: float | None = None, timeout: int = 20) -> None:
        if not target.token:
            raise GitHubError('no GitHub token (set GITHUB_TOKEN or pass --token)')
        if not target.repository or '/' not in target.repository:
            raise GitHubError(f'invalid repository {target.repository!r} (expected owner/name)')
        self.target = target
        self.requests = 0
        if write_interval is None:
            write_interval = _float_env('MLPROJ_GITHUB_WRITE_INTERVAL')
        self._write_interval = write_interval
        self._timeout = timeout
        self._gh: Any = None
        self._repo: Any = None

    # -- plumbing ------------------------------------------------------------------------
    def redact(self, text: str) -> str:
        return text.replace(self.target.token, '***') if self.target.token else text

    @property
    def repo(self) -> Any:
        if self._repo is None:
            from github import Auth, Github, GithubRetry

            self._gh = Github(
                base_url=self.target.api_url, auth=Auth.Token(self.target.token), lazy=True, per_page=100,
                timeout=self._timeout, user_agent='mlproj', retry=GithubRetry(total=3, backoff_factor=0.5),
                seconds_between_writes=self._write_interval or None,
            )
            self._repo = self._gh.get_repo(self.target.repository)
        return self._repo

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from github import GithubException

        self.requests += 1
        try:
            return fn(*args, **kwargs)
        except GithubException as e:
            message = ''
            if isinstance(e.data, dict):
                message = str(e.data.get('message') or '')
                errors = e.data.get('errors')
                if errors:
                    message += f' {errors}'
            raise GitHubError(self.redact(f'{what}: HTTP {e.status} {" ".join(message.split())}'.strip()[:500]),
                              e.status) from None
        except OSError as e:  # connection refused, DNS, TLS, timeouts (requests' errors are OSErrors)
            raise GitHubError(self.redact(f'{what}: cannot reach {self.target.api_url}: {type(e).__name__}')) from None

    # -- sticky PR comment -----------------------------------------------------------------
    def upsert_comment(self, report: Report) -> tuple[int, str]:
        """Create or edit the comment for ``report.key``; returns (comment id, 'created'|'updated')."""
        if self.target.pr_number is None:
            raise GitHubError('not a pull request event: no PR to comment on')
        mark = marker(report.key)
        body = render(report, COMMENT_CAP, prefix=mark + '\n')
        issue = self.repo.get_issue(self.target.pr_number)

        def find() -> Any:
            # A bot's comment first: anyone can paste the marker into a comment of their own.
            found = [c for c in issue.get_comments() if mark in (c.body or '')]
            bots = [c for c in found if getattr(c.user, 'type', '') == 'Bot']
            return (bots or found or [None])[0]

        existing = self._call('listing PR comments', find)
        if existing is not None:
            try:
                self._call('editing the PR comment', existing.edit, body)
                return existing.id, 'updated'
            except GitHubError as e:
                if e.status not in (403, 404):
                    raise
        created = self._call('creating the PR comment', issue.create_comment, body)
        return created.id, 'created'

    # -- commit status ---------------------------------------------------------------------
    def set_status(self, report: Report, *, context: str, target_url: str = '') -> str:
        state = commit_state(report)
        commit = self.repo.get_commit(self.target.sha)
        kwargs: dict[str, Any] = {'description': description(report), 'context': context[:100]}
        if target_url:
            kwargs['target_url'] = target_url
        self._call('setting the commit status', commit.create_status, state, **kwargs)
        return state

    # -- check run -------------------------------------------------------------------------
    def start_check_run(self, name: str, *, details_url: str = '', external_id: str = '') -> int:
        kwargs: dict[str, Any] = {'status': 'in_progress', 'started_at': _now()}
        if details_url:
            kwargs['details_url'] = details_url
        if external_id:
            kwargs['external_id'] = external_id
        run = self._call('creating the check run', self.repo.create_check_run, name, self.target.sha, **kwargs)
        return int(run.id)

    def finish_check_run(self, report: Report, name: str, *, check_run_id: int | None = None,
                         annotations: list[dict[str, Any]] | None = None, details_url: str = '') -> tuple[int, int]:
        """Complete the check run (creating it if needed); returns (id, number of annotation requests)."""
        annotations = annotations or []
        batches = list(ann.batches(annotations)) or [[]]
        head = title(report)
        summary = render(report, CHECK_SUMMARY_CAP)

        def output(batch: list[dict[str, Any]]) -> dict[str, Any]:
            out: dict[str, Any] = {'title': head[:255], 'summary': summary}
            if batch:
                out['annotations'] = batch
            return out

        final: dict[str, Any] = {'status': 'completed', 'conclusion': conclusion(report), 'completed_at': _now()}
        if details_url:
            final['details_url'] = details_url
        if check_run_id is None:
            run = self._call('creating the check run', self.repo.create_check_run, name, self.target.sha,
                             output=output(batches[0]), **final)
            run_id = int(run.id)
        else:
            run = self.repo.get_check_run(int(check_run_id))
            self._call('completing the check run', run.edit, output=output(batches[0]), **final)
            run_id = int(check_run_id)
        for batch in batches[1:]:  # later batches are appended by updates
            self._call('adding annotations to the check run', run.edit, output=output(batch))
        return run_id, len([b for b in batches if b])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _float_env(name: str) -> float:
    from mlproj.settings import env_value

    return float(env_value(name))
