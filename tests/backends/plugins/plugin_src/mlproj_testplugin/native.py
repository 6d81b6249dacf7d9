"""An mlproj-native backend plugin: the local backend, plus a tag proving it was used."""
from __future__ import annotations

from mlproj.backends import local


def submit(launch):
    launch.tracker.set_tags(launch.run_id, {'testplugin.native': 'yes'})
    return local.submit(launch)
