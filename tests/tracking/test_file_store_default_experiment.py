"""A run on a new file store while another process is creating the store's default experiment
(MLflow's FileStore race: the store's directory exists before ``0/meta.yaml``) waits for it
instead of failing with "experiment id '0' does not exist".  Eight concurrent runs against a new
``mlruns`` hit this in tests/source/test_cache.py about once in ten runs on a loaded machine."""
from __future__ import annotations

import threading
import time

import pytest

from mlproj.errors import TrackingError
from mlproj.tracking import ClientTracker

pytestmark = pytest.mark.slow  # MLflow's client is imported


def default_meta(tmp_path) -> str:
    """The meta.yaml MLflow's FileStore writes for a new store's default experiment."""
    first = ClientTracker((tmp_path / 'made-by-mlflow').as_uri())
    assert first.resolve_experiment(None, None) == '0'
    return (tmp_path / 'made-by-mlflow' / '0' / 'meta.yaml').read_text()


def half_made_store(tmp_path):
    """A store directory as another process leaves it right after creating it: no experiment yet."""
    root = tmp_path / 'mlruns'
    (root / '.trash').mkdir(parents=True)
    return root


def test_the_default_experiment_being_created_is_waited_for(tmp_path):
    meta = default_meta(tmp_path)
    root = half_made_store(tmp_path)

    def the_other_process() -> None:
        time.sleep(0.3)
        (root / '0').mkdir()
        (root / '0' / 'meta.yaml').write_text(meta.replace(str(tmp_path / 'made-by-mlflow'), str(root)))

    t = threading.Thread(target=the_other_process)
    t.start()
    start = time.monotonic()
    try:
        assert ClientTracker(root.as_uri()).resolve_experiment(None, None) == '0'
    finally:
        t.join()
    assert time.monotonic() - start >= 0.3


def test_a_default_experiment_that_never_comes_is_one_error(tmp_path, monkeypatch):
    monkeypatch.setattr(ClientTracker, 'DEFAULT_EXPERIMENT_WAIT', 0.3)
    root = half_made_store(tmp_path)
    start = time.monotonic()
    with pytest.raises(TrackingError, match="experiment id '0' does not exist"):
        ClientTracker(root.as_uri()).resolve_experiment(None, None)
    assert 0.3 <= time.monotonic() - start < 5


def test_other_stores_do_not_wait(tmp_path, monkeypatch):
    """Only a file store creates its default experiment lazily: elsewhere a missing '0' (deleted
    for good) is reported at once."""
    tracker = ClientTracker(f'sqlite:///{tmp_path}/mlflow.db')
    calls = []
    real = tracker.resolve_experiment

    def missing(name, experiment_id):
        calls.append(experiment_id)
        if experiment_id == '0':
            raise TrackingError("experiment id '0' does not exist")
        return real(name, experiment_id)

    monkeypatch.setattr(tracker, 'resolve_experiment', missing)
    with pytest.raises(TrackingError):
        tracker._default_experiment()
    assert calls == ['0']
