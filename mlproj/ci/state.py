"""The JSON file the action's steps hand to each other (run id, tracking URI, check run id...).

Written atomically (temp file + rename) so a step cancelled mid-write never leaves half a file
for the cancel or report step to trip over.  It never holds a credential.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

from mlproj.errors import BadArgumentError

KEYS = (
    'run_id', 'experiment_id', 'tracking_uri', 'status', 'error', 'backend', 'entry_point', 'uri',
    'version', 'key', 'run_url', 'duration_s', 'check_run_id',
)


def load(path: str | None) -> dict[str, Any]:
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise BadArgumentError(f'cannot read the state file: {e}', path) from None
    return data if isinstance(data, dict) else {}


def update(path: str | None, **values: Any) -> dict[str, Any]:
    """Merge ``values`` into the file (None values are dropped) and return the result."""
    unknown = set(values) - set(KEYS)
    if unknown:
        raise BadArgumentError('unknown state keys: ' + ', '.join(sorted(unknown)))
    data = load(path)
    data.update({k: v for k, v in values.items() if v is not None})
    if not path:
        return data
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.state-', dir=directory)
    try:
        with os.fdopen(fd, 'w', encoding='utf-8') as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return data
