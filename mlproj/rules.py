"""Stable ids of every problem the MLproject loader and the linter can report.

The loader (``spec.py``) and ``mlproj lint`` share these ids: whatever ``mlproj run`` rejects,
``mlproj lint`` reports under the same id.  Ids are never reused or renumbered.

``severity`` is what ``mlproj lint`` reports; ``run`` is what ``mlproj run`` does with a finding of
the loader, because a file MLflow runs must run under mlproj too (strictness belongs in lint):

* ``refuse``: the file is refused (MLflow fails on it too, or running it would be unsafe);
* ``entry-point``: refused when that entry point is the one being run (as MLflow does; with
  ``--strict``, whichever entry point runs);
* ``strict``: a warning, and the project runs as MLflow runs it; ``mlproj run --strict`` refuses it;
* ``strict-on-use``: (MLP006) a warning; ``--strict`` refuses it only when the value is used;
* ``warn``: a warning;
* ``none``: lint-only rules, which the loader does not compute.
"""
from __future__ import annotations

from typing import NamedTuple


class Rule(NamedTuple):
    id: str
    name: str
    severity: str  # 'error' | 'warning'
    doc: str
    scope: str = 'spec'  # 'spec': the loader reports it (so `mlproj run` too); 'lint': only `mlproj lint`
    run: str = ''        # run-time effect (see above); '' = derived: errors refuse, warnings warn, lint: none

    @property
    def run_effect(self) -> str:
        if self.run:
            return self.run
        if self.scope == 'lint':
            return 'none'
        return 'refuse' if self.severity == 'error' else 'warn'


# how the README's rule table states each run-time effect
RUN_EFFECT_TEXT = {
    'refuse': 'refused',
    'entry-point': 'refused when that entry point is run; `--strict`: always',
    'strict': 'warning, runs as MLflow runs it; `--strict` refuses',
    'strict-on-use': 'warning, the default is passed as given; `--strict` refuses when it is used',
    'warn': 'warning',
    'none': '—',
}

_RULES = [
    Rule('MLP001', 'yaml-syntax', 'error', 'The file is not valid YAML.'),
    Rule('MLP002', 'duplicate-key', 'error',
         'A mapping repeats a key; YAML keeps only the last one, so the first is silently lost.', run='strict'),
    Rule('MLP003', 'wrong-type', 'error',
         'A field has the wrong type (e.g. entry_points is a list, command is a mapping).'),
    Rule('MLP004', 'unknown-key', 'warning',
         'A key MLflow does not know; usually a typo (entry_point for entry_points). '
         'MLflow silently ignores it.'),
    Rule('MLP005', 'unknown-param-type', 'error',
         'A parameter type other than string, float, int, bool, path, uri (such as list[int]); run treats '
         'it as string, as MLflow does.', run='strict'),
    Rule('MLP006', 'bad-default', 'error', 'A parameter default does not parse as its declared type '
         '(type: int, default: None); run passes it as given when it is used, as MLflow does.',
         run='strict-on-use'),
    Rule('MLP007', 'multiple-envs', 'error',
         'More than one of docker_env, python_env, conda_env is set.'),
    Rule('MLP008', 'docker-no-image', 'error', 'docker_env has no image.'),
    Rule('MLP009', 'docker-volumes', 'error', 'docker_env.volumes is not a list of strings.'),
    Rule('MLP010', 'docker-environment', 'error',
         'docker_env.environment entries must be a variable name or a [name, value] pair.'),
    Rule('MLP011', 'env-file-missing', 'error', 'The referenced conda_env / python_env file does not exist.'),
    Rule('MLP012', 'unknown-placeholder', 'error',
         'A {placeholder} in a command names no declared parameter.'),
    Rule('MLP013', 'empty-file', 'warning', 'The MLproject file is empty.'),
    Rule('MLP014', 'no-command', 'error',
         'An entry point has no command (and no script of that name exists).', run='entry-point'),
    Rule('MLP015', 'misnamed-file', 'warning',
         'A file named like MLproject.yaml / mlproject.yml: MLflow and mlproj only read a file '
         'named exactly MLproject (any case), so this file is ignored.'),
    Rule('MLP016', 'unused-param', 'warning',
         'A declared parameter is never used in its command (it is not passed to the program).'),
    Rule('MLP017', 'env-file-malformed', 'error',
         'The referenced (or conventional) conda.yaml / python_env.yaml is not valid: YAML syntax, '
         '`python` not a string, dependencies not a list of strings, a malformed pip section.'),
    Rule('MLP018', 'several-mlproject-files', 'error',
         'More than one file in the directory is named MLproject in some letter case.'),
    Rule('MLP019', 'bad-name', 'error', 'A parameter or entry point name is not a usable string.'),
    Rule('MLP026', 'env-file-outside-project', 'error',
         'The conda_env / python_env file lies outside the project directory (../python_env.yaml in a '
         'monorepo), inside the same repository or checkout: it runs, as in MLflow, but the project '
         'directory is not self-contained.', run='strict'),
    Rule('MLP027', 'env-file-outside-root', 'error',
         'The conda_env / python_env path leaves the repository or checkout root (/opt/env.yaml, '
         '../.. beyond the root, or a symlink pointing out): a project never reads files outside its source.'),
    # lint-only rules: `mlproj lint` reports them, the loader does not
    Rule('MLP020', 'quoted-placeholder', 'warning',
         'A {placeholder} inside quotes in a command: values are already shell-quoted, so a value with '
         "spaces reaches the program with literal quote characters ('\"{x}\"' gives \"'a b'\").", 'lint'),
    Rule('MLP021', 'missing-script', 'warning',
         'The command runs a .py / .sh / .R file (python train.py) that does not exist in the project.', 'lint'),
    Rule('MLP022', 'docker-no-name', 'warning',
         'docker_env without a top-level name: MLflow needs the name to tag the image it builds.', 'lint'),
    Rule('MLP023', 'bad-suppression', 'warning',
         'A "# mlproj: disable=..." comment names a rule id that does not exist.', 'lint'),
    Rule('MLP024', 'docker-host-mount', 'warning',
         'docker_env.volumes mounts the host root (/), the Docker socket (/var/run/docker.sock) or a home '
         'directory (~, $HOME, /root, /home/<user>): the container, and so any change to the project, '
         'can read or take over the host.', 'lint'),
    Rule('MLP025', 'docker-secret-env', 'warning',
         'docker_env.environment copies a secret from the host into the container by name (GITHUB_TOKEN, '
         '*_TOKEN, *_SECRET, *_PASSWORD, AWS_SECRET_ACCESS_KEY, DATABRICKS_TOKEN, ...): every program in '
         'the image sees it. MLflow tracking credentials are exempt (mlproj passes them anyway).', 'lint'),
    Rule('MLP030', 'misspelled-key', 'error',
         'An unknown key that is a close misspelling of a known one (entry_point for entry_points, '
         'comand for command): what it should set is silently missing, so it is an error in lint. '
         '`mlproj run`, like MLflow, only warns (MLP004).', 'lint'),
    Rule('MLP031', 'entry-point-env', 'warning',
         'An entry point declares its own python_env / conda_env / docker_env: mlproj-only; mlflow run '
         "ignores it and uses the project's environment, so the step runs there with other dependencies. "
         'Silence it (# mlproj: disable=MLP031) in a project meant for mlproj.', 'lint'),
]

RULES: dict[str, Rule] = {r.id: r for r in _RULES}


def register(rule: Rule) -> Rule:
    """Add a rule (used by ``mlproj.lint`` for lint-only rules)."""
    existing = RULES.get(rule.id)
    if existing is not None and existing != rule:
        raise ValueError(f'rule id {rule.id} already registered')
    RULES[rule.id] = rule
    return rule
