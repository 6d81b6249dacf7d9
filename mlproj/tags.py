"""The vocabulary of the MLflow runs mlproj records: tag names and run statuses, in one place.

``mlflow.*`` names are MLflow's own (what ``mlflow run``, the MLflow UI and ``MlflowClient`` users
expect to find); ``mlproj.*`` names are mlproj's additions.  Every module names a tag or an MLflow
run status through these constants: ``tests/unit/test_tags.py`` fails when one of these strings is
written out as a literal anywhere else in ``mlproj/``.  Backends keep the engine's own state names
(Ray's ``JobStatus``, Slurm's job states) in their mapping tables; those are not MLflow statuses.

Stdlib-free and import-free: everything may import it on the fast run path.
"""
from __future__ import annotations

# --- MLflow's tags -----------------------------------------------------------------------------
RUN_NAME = 'mlflow.runName'
USER = 'mlflow.user'
PARENT_RUN_ID = 'mlflow.parentRunId'
SOURCE_NAME = 'mlflow.source.name'
SOURCE_TYPE = 'mlflow.source.type'
GIT_COMMIT = 'mlflow.source.git.commit'
GIT_BRANCH = 'mlflow.source.git.branch'
GIT_REPO_URL = 'mlflow.source.git.repoURL'
GIT_REPO_URL_LEGACY = 'mlflow.gitRepoURL'  # what MLflow < 1.x wrote and `mlflow run` still writes
GIT_DIRTY = 'mlflow.source.git.dirty'
PROJECT_ENTRY_POINT = 'mlflow.project.entryPoint'
PROJECT_BACKEND = 'mlflow.project.backend'
PROJECT_ENV = 'mlflow.project.env'
DOCKER_IMAGE_URI = 'mlflow.docker.image.uri'
DOCKER_IMAGE_ID = 'mlflow.docker.image.id'
DATABRICKS_RUN_URL = 'mlflow.databricks.runURL'
DATABRICKS_SHELL_JOB_RUN_ID = 'mlflow.databricks.shellJobRunID'
DATABRICKS_SHELL_JOB_ID = 'mlflow.databricks.shellJobID'
DATABRICKS_WEBAPP_URL = 'mlflow.databricks.webappURL'
DATABRICKS_RUN_ID = 'mlflow.databricks.runID'

# --- mlproj's tags -----------------------------------------------------------------------------
MLPROJ_PREFIX = 'mlproj.'
SOURCE_URI = 'mlproj.source.uri'  # the URI as given (credentials removed)
SOURCE_SUBDIRECTORY = 'mlproj.source.subdirectory'
SOURCE_VERSION = 'mlproj.source.version'  # the revision as given (-v), before resolution
GIT_DIFF_SHA256 = 'mlproj.source.git.diff_sha256'  # a dirty tree's diff hash
ENV_MANAGER = 'mlproj.env_manager'
ENV_HASH = 'mlproj.env.hash'
ENV_LOCK_SHA256 = 'mlproj.env.lock_sha256'
CACHE_KEY = 'mlproj.cache_key'
REPRODUCED_FROM = 'mlproj.reproduced_from'
STALE_REASON = 'mlproj.stale'
LAUNCHER_PREFIX = 'mlproj.launcher.'  # the local launcher's pid/host/start (mlproj.stale)
SWEEP = 'mlproj.sweep'
SWEEP_POINTS = 'mlproj.sweep.points'
SWEEP_SWEPT = 'mlproj.sweep.swept'
SWEEP_MAX_PARALLEL = 'mlproj.sweep.max_parallel'
SWEEP_METRIC = 'mlproj.sweep.metric'
PLUGIN_RUN_ID = 'mlproj.plugin.run_id'
DATABRICKS_ARCHIVE = 'mlproj.databricks.archive'
RAY_SUBMISSION_ID = 'mlproj.ray.submission_id'
RAY_ADDRESS = 'mlproj.ray.address'
RAY_RUNTIME_ENV = 'mlproj.ray.runtime_env'
SLURM_SCRIPT = 'mlproj.slurm.script'
SLURM_JOB_ID = 'mlproj.slurm.job_id'
SLURM_OUTPUT = 'mlproj.slurm.output'
KUBERNETES_JOB_NAME = 'mlproj.kubernetes.job_name'
KUBERNETES_NAMESPACE = 'mlproj.kubernetes.namespace'
KUBERNETES_CONTEXT = 'mlproj.kubernetes.context'

# --- MLflow's run statuses ---------------------------------------------------------------------
RUNNING = 'RUNNING'
SCHEDULED = 'SCHEDULED'
FINISHED = 'FINISHED'
FAILED = 'FAILED'
KILLED = 'KILLED'
ACTIVE_STATUSES = (RUNNING, SCHEDULED)
TERMINAL_STATUSES = (FINISHED, FAILED, KILLED)
RUN_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES
