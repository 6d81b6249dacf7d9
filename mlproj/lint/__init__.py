"""``mlproj lint``: rules with stable ids (``mlproj.rules``), the same spec model as ``mlproj run``.

Public entry points::

    from mlproj.lint import lint_paths, load_config
    result = lint_paths(['.'], load_config(None))
    result.issues, result.exit_code(strict=False)
"""
from __future__ import annotations

from mlproj.lint.config import LintConfig, load_config
from mlproj.lint.engine import Issue, LintResult, lint_paths, lint_text

__all__ = ['Issue', 'LintConfig', 'LintResult', 'lint_paths', 'lint_text', 'load_config']
