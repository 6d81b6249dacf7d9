"""The one-line quoting helpers of ``mlproj.errors``."""
from __future__ import annotations

from mlproj.errors import first_line, one_line


def test_first_line_keeps_the_first_line_only() -> None:
    assert first_line(ValueError('  bad value\nTraceback detail\n')) == 'bad value'


def test_first_line_names_the_type_when_there_is_no_text() -> None:
    assert first_line(KeyboardInterrupt()) == 'KeyboardInterrupt'
    assert first_line(ValueError('   \n ')) == 'ValueError'


def test_first_line_limit() -> None:
    assert first_line(ValueError('x' * 1000)) == 'x' * 300
    assert first_line(ValueError('x' * 1000), 200) == 'x' * 200


def test_one_line_joins_all_lines() -> None:
    assert one_line(RuntimeError('job failed:\n  exit code 3\n\tsee log')) == 'job failed: exit code 3 see log'
    assert one_line(RuntimeError('')) == 'RuntimeError'
    assert one_line(RuntimeError('y' * 1000)) == 'y' * 400
