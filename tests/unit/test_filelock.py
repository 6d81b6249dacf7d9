"""``mlproj.cachedir.FileLock``: the one lock of the clone cache and the environment store."""
from __future__ import annotations

import time

import pytest

from mlproj.cachedir import FileLock


def test_second_lock_on_the_same_file_waits_for_the_first(tmp_path) -> None:
    first, second = FileLock(tmp_path / 'x.lock'), FileLock(tmp_path / 'x.lock')
    assert first.acquire(0)
    try:
        assert not second.acquire(0)
        start = time.monotonic()
        assert not second.acquire(0.2)
        assert time.monotonic() - start >= 0.2
    finally:
        first.release()
    assert second.acquire(0)
    second.release()
    second.release()  # releasing twice is harmless


def test_acquire_patiently_says_so_once_only_when_it_has_to_wait(tmp_path) -> None:
    calls: list[int] = []
    lock = FileLock(tmp_path / 'x.lock')
    assert lock.acquire_patiently(5, lambda: calls.append(1))
    lock.release()
    assert calls == []

    holder = FileLock(tmp_path / 'x.lock')
    assert holder.acquire(0)
    try:
        assert not lock.acquire_patiently(0, lambda: calls.append(1))
        assert calls == []  # a single try never announces a wait
        assert not lock.acquire_patiently(0.3, lambda: calls.append(1))
        assert calls == [1]
    finally:
        holder.release()


def test_a_lock_file_that_cannot_be_created_is_an_oserror(tmp_path) -> None:
    with pytest.raises(OSError):
        FileLock(tmp_path / 'missing' / 'x.lock').acquire(0)
