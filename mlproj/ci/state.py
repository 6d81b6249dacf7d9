"""The JSON file the action's steps hand to each other (run id, tracking URI, check run id...).

Written atomically (temp file + rename) so a step cancelled mid-write never leaves half a file
for the cancel or report step to trip over.  It never holds a credential.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
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
    from mlproj.cachedir import write_text_atomic

    target = Path(os.path.abspath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=True))
    return data
