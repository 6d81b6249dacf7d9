"""MLproject loading, the public entry: ``load_project``, ``parse_mlproject``, the project model.

The implementation lives in three modules along its seams, re-exported here so that
``mlproj.spec`` stays the one import for the Python API and existing callers:

* ``mlproj.spec_yaml``   YAML with positions, duplicate keys, the node budget (``parse_yaml``)
* ``mlproj.spec_model``  ``Project`` / ``EntryPoint`` / ``Parameter`` / ``EnvSpec`` / ``DockerSpec``,
                         key sets and types, command templates, the env-file path policy
* ``mlproj.spec_loader`` file discovery and reading, building the model, ``load_project``

Code inside mlproj imports from those modules directly.
"""
from __future__ import annotations

from mlproj.findings import Finding
from mlproj.spec_loader import (
    analyse_mlproject,
    find_mlproject,
    load_project,
    parse_mlproject,
    read_mlproject,
)
from mlproj.spec_model import (
    DATABRICKS_KEYS,
    DEFAULT_CONDA_ENV,
    DEFAULT_PYTHON_ENV,
    DOCKER_KEYS,
    ENTRY_POINT_KEYS,
    ENV_KEYS,
    MISNAMED_RE,
    PARAM_KEYS,
    PARAM_TYPE_ALIASES,
    PARAM_TYPES,
    TOP_LEVEL_KEYS,
    DockerSpec,
    EntryPoint,
    EnvSpec,
    Parameter,
    Project,
    contained,
    env_file_policy,
    iter_template,
    placeholders,
    run_warning_text,
)
from mlproj.spec_yaml import Pos, locate_in_value, parse_yaml

__all__ = [
    'DATABRICKS_KEYS', 'DEFAULT_CONDA_ENV', 'DEFAULT_PYTHON_ENV', 'DOCKER_KEYS', 'ENTRY_POINT_KEYS', 'ENV_KEYS',
    'MISNAMED_RE', 'PARAM_KEYS', 'PARAM_TYPES', 'PARAM_TYPE_ALIASES', 'TOP_LEVEL_KEYS',
    'DockerSpec', 'EntryPoint', 'EnvSpec', 'Finding', 'Parameter', 'Pos', 'Project',
    'analyse_mlproject', 'contained', 'env_file_policy', 'find_mlproject', 'iter_template', 'load_project',
    'locate_in_value', 'parse_mlproject', 'parse_yaml', 'placeholders', 'read_mlproject', 'run_warning_text',
]
