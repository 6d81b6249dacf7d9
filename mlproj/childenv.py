"""The environment of every process mlproj starts on a project's behalf: one policy, one place.

Two phases get an environment from here:

* ``'run'``: the project's own command (local backend, the variables a docker run passes with
  ``-e``, the environment ``sbatch`` exports to a Slurm job);
* ``'build'``: the environment build steps (``uv``/``pip``/``virtualenv``/``conda``/``docker
  build``).  They run code the project controls too: ``setup.py``, an in-tree PEP 517 build
  backend of a ``./pkg`` dependency, any sdist's build.

The policy is a *deny-list*, not an allow-list: a project's processes legitimately need PATH,
HOME, locale, proxies, CUDA_*, HF_HOME, pip/uv configuration and whatever else the user's shell
holds (``mlflow run`` passes everything), so only names that are known credentials of someone
other than the project are withheld:

=================================================  ======================  ======
names                                              run                     build
=================================================  ======================  ======
mlproj's own credentials (``MLPROJ_GIT_TOKEN``,    no                      no
``MLPROJ_GIT_USERNAME``, ``MLPROJ_SSH_KEY``,
``MLFLOW_GIT_USERNAME``/``_PASSWORD``,
``MLPROJ_SSH_KEY_PASSPHRASE``, any ``MLPROJ_*``
ending ``_TOKEN``/``_PASSWORD``/``_PASSPHRASE``/
``_SECRET``)
CI runner credentials (``GITHUB_TOKEN``,           no                      no
``GH_TOKEN``, ``GH_ENTERPRISE_TOKEN``,
``GITHUB_ENTERPRISE_TOKEN``, ``ACTIONS_*``,
``INPUT_*``)
Databricks secrets (``DATABRICKS_TOKEN``,          only when the tracking  no
``DATABRICKS_CLIENT_SECRET``,                      or registry URI is
``DATABRICKS_PASSWORD``)                           ``databricks``
MLflow tracking credentials                        yes                     no
(``MLFLOW_TRACKING_TOKEN``, ``_PASSWORD``)
artifact-store cloud credentials (``AWS_ACCESS_    yes                     no
KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AZURE_STORAGE_*``,
``AZURE_CLIENT_SECRET``,
``GOOGLE_APPLICATION_CREDENTIALS``)
everything else                                    yes                     yes
names passed explicitly (``--pass-env NAME``,      yes                     yes
``MLPROJ_PASS_ENV=A,B``)
=================================================  ======================  ======

Databricks: the Databricks *backend* needs its credentials in mlproj's own process (it talks to
the Jobs API), never in a child; a *local* run needs them only to log to a Databricks tracking
store, where they play the role ``MLFLOW_TRACKING_TOKEN`` plays for a tracking server.

mlproj's own process keeps its environment (it needs the Git token to fetch sources); the policy
applies to what it hands on.  ``strip_ci_secrets`` is the one exception, used by ``mlproj ci run``
to drop the runner's credentials from its own process as well, so that third-party backend
plugins (which inherit ``os.environ``) cannot hand them on either (except the OIDC request pair,
which databricks-sdk needs in mlproj's process for ``DATABRICKS_AUTH_TYPE=github-oidc``).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping

PHASES = ('run', 'build')

MLPROJ_SECRETS = frozenset({'MLPROJ_GIT_TOKEN', 'MLPROJ_GIT_USERNAME', 'MLPROJ_SSH_KEY',
                            'MLPROJ_SSH_KEY_PASSPHRASE', 'MLPROJ_DATABRICKS_TOKEN',
                            # MLflow's documented Git credentials, used by mlproj to fetch sources
                            'MLFLOW_GIT_USERNAME', 'MLFLOW_GIT_PASSWORD'})
_SECRET_SUFFIXES = ('_TOKEN', '_PASSWORD', '_PASSPHRASE', '_SECRET')
CI_SECRETS = frozenset({'GITHUB_TOKEN', 'GH_TOKEN', 'GH_ENTERPRISE_TOKEN', 'GITHUB_ENTERPRISE_TOKEN'})
CI_PREFIXES = ('ACTIONS_', 'INPUT_')
DATABRICKS_SECRETS = frozenset({'DATABRICKS_TOKEN', 'DATABRICKS_CLIENT_SECRET', 'DATABRICKS_PASSWORD'})
TRACKING_SECRETS = frozenset({'MLFLOW_TRACKING_TOKEN', 'MLFLOW_TRACKING_PASSWORD'})
ARTIFACT_SECRETS = frozenset({'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN',
                              'AZURE_CLIENT_SECRET', 'GOOGLE_APPLICATION_CREDENTIALS'})
ARTIFACT_PREFIXES = ('AZURE_STORAGE_',)
# kept in mlproj's own process by strip_ci_secrets (never handed on): databricks-sdk's github-oidc
# authentication of the Databricks backend requests its token with them
OWN_PROCESS_KEEPS = frozenset({'ACTIONS_ID_TOKEN_REQUEST_URL', 'ACTIONS_ID_TOKEN_REQUEST_TOKEN'})


def passed_names(extra: Iterable[str] = (), environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """Names the user passes explicitly: ``MLPROJ_PASS_ENV`` (comma separated) plus ``extra``."""
    from mlproj.settings import env_value

    names = {n.strip() for n in str(env_value('MLPROJ_PASS_ENV', environ)).split(',')}
    names.update(n.strip() for n in extra)
    names.discard('')
    return frozenset(names)


def _databricks_store(tracking_uri: str | None, environ: Mapping[str, str]) -> bool:
    uris = (tracking_uri or environ.get('MLFLOW_TRACKING_URI', ''), environ.get('MLFLOW_REGISTRY_URI', ''))
    return any(u.startswith('databricks') for u in uris)


def withheld_reason(name: str, phase: str, *, databricks_store: bool = False) -> str | None:
    """Why ``name`` does not reach a process of ``phase``, or None when it does."""
    upper = name.upper()
    if upper in MLPROJ_SECRETS or (upper.startswith('MLPROJ_') and upper.endswith(_SECRET_SUFFIXES)):
        return "mlproj's own credential"
    if upper in CI_SECRETS or upper.startswith(CI_PREFIXES):
        return 'CI runner credential'
    if upper in DATABRICKS_SECRETS and (phase == 'build' or not databricks_store):
        return 'Databricks credential (passed only to runs that log to a Databricks tracking store)'
    if phase == 'build' and (upper in TRACKING_SECRETS or upper in ARTIFACT_SECRETS
                             or upper.startswith(ARTIFACT_PREFIXES)):
        return 'tracking/artifact-store credential (the run needs it, the build does not)'
    return None


def environment(phase: str, *, base: Mapping[str, str] | None = None, tracking_uri: str | None = None,
                pass_env: Iterable[str] = ()) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with what ``phase`` must not see removed."""
    if phase not in PHASES:
        raise ValueError(f'unknown phase {phase!r}')
    env = os.environ if base is None else base
    keep = passed_names(pass_env, env)
    dbx = _databricks_store(tracking_uri, env)
    return {k: v for k, v in env.items()
            if k in keep or withheld_reason(k, phase, databricks_store=dbx) is None}


def withheld(phase: str, *, base: Mapping[str, str] | None = None, tracking_uri: str | None = None,
             pass_env: Iterable[str] = ()) -> list[str]:
    """The (sorted) names ``environment`` removes: for messages, never the values."""
    env = os.environ if base is None else base
    kept = environment(phase, base=env, tracking_uri=tracking_uri, pass_env=pass_env)
    return sorted(k for k in env if k not in kept)


def strip_ci_secrets(environ: MutableMapping[str, str], pass_env: Iterable[str] = ()) -> list[str]:
    """Remove the CI runner's credentials from ``environ`` itself; return their names (sorted)."""
    keep = passed_names(pass_env, environ) | OWN_PROCESS_KEEPS
    removed = [k for k in list(environ) if k not in keep
               and (k.upper() in CI_SECRETS or k.upper().startswith(CI_PREFIXES))]
    for k in removed:
        environ.pop(k, None)
    return sorted(removed)
