"""``-b kubernetes``: run the project as a Kubernetes Job (MLflow-compatible backend config).

Backend config (MLflow's keys, plus opt-outs MLflow lacks, issue #3741):

* ``kube-job-template-path`` (required): a batch/v1 Job YAML.  As in MLflow, mlproj sets
  ``metadata.name``, the first container's ``name``, ``image`` and ``command``, and appends the
  run's ``MLFLOW_*`` variables to its ``env`` (``KUBE_MLFLOW_TRACKING_URI`` overrides the tracking
  URI given to the pod).  ``{replaced with ...}`` / ``{appended with ...}`` placeholder strings are
  dropped.  The namespace is ``metadata.namespace``, else ``namespace``, else ``default``.
* ``kube-context``: a context of the kubeconfig (``KUBECONFIG`` / ``~/.kube/config``); without
  one, the current context, and in a pod the in-cluster service account.
* ``repository-uri``: where the project image is pushed.  The image is built ``FROM`` the
  ``docker_env`` image with the project copied in (the docker/podman CLI, through
  ``mlproj.envs.docker``), tagged ``<repository-uri>:<content hash>``, pushed, and referenced by
  digest.  ``"push-image": false`` skips the push (kind/minikube with a loaded image);
  ``"build-image": false`` uses ``image`` (or ``repository-uri``) as is: an image that already holds
  the project and its environment.
* The container runs ``sh -c <entry point command>`` (MLflow passes a split argv without a shell).

The Job is created with the official ``kubernetes`` client; pods are found by the label
``mlproj/run-id``; their logs are followed; the Job's ``Complete``/``Failed`` conditions give
FINISHED/FAILED (the exit code comes from the pod); Ctrl-C deletes the Job (pods included) -> KILLED.
"""
from __future__ import annotations

import copy
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlproj.backends import FAILED, FINISHED, KILLED, RUNNING, SCHEDULED, Launch
from mlproj.backends.remote import (
    JobState,
    Key,
    RemoteSubmittedRun,
    cancel_job,
    checked_at_submit,
    is_bool,
    is_number,
    is_str,
    say,
    validate_config,
)
from mlproj.backends.signals import started
from mlproj.errors import BackendError, EnvError, one_line
from mlproj.tags import (
    DOCKER_IMAGE_ID,
    DOCKER_IMAGE_URI,
    KUBERNETES_CONTEXT,
    KUBERNETES_JOB_NAME,
    KUBERNETES_NAMESPACE,
    PROJECT_ENV,
)

WHERE = 'kubernetes backend config'

validate = checked_at_submit
RUN_LABEL = 'mlproj/run-id'

CONFIG_KEYS = {
    'kube-job-template-path': Key(is_str, 'the path of a batch/v1 Job YAML template'),
    'kube-context': Key(is_str, 'a context name of the kubeconfig'),
    'repository-uri': Key(is_str, 'an image repository such as "registry.example.com/team/project"'),
    'build-image': Key(is_bool, 'false to run an existing image ("image") without building'),
    'push-image': Key(is_bool, 'false to skip the push (an image loaded into kind/minikube)'),
    'image': Key(is_str, 'an existing image reference, used with "build-image": false'),
    'namespace': Key(is_str, 'a namespace, when the template has none'),
    'poll-interval': Key(is_number, 'seconds between Job status reads, a number'),
}


# --------------------------------------------------------------------------------------------
# the Job template


def _dns_label(text: str, limit: int) -> str:
    label = re.sub(r'[^a-z0-9-]+', '-', text.lower()).strip('-')
    return (label[:limit].rstrip('-') or 'mlproj')


def load_template(path_text: str, cwd: str) -> dict[str, Any]:
    import yaml

    path = Path(os.path.expanduser(path_text))
    if not path.is_absolute():
        path = Path(cwd, path)
    if not path.is_file():
        raise BackendError(f"key 'kube-job-template-path': could not find {str(path)!r}", WHERE)
    try:
        data = yaml.safe_load(path.read_text(encoding='utf-8'))
    except OSError as e:
        raise BackendError(f'cannot read the Job template: {e.strerror}', str(path)) from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f'{path}:{mark.line + 1}:{mark.column + 1}' if mark else str(path)
        raise BackendError('the Job template is not valid YAML', where) from None
    if not isinstance(data, dict):
        raise BackendError('the Job template must be a mapping (a batch/v1 Job)', str(path))
    if data.get('kind', 'Job') != 'Job' or data.get('apiVersion', 'batch/v1') != 'batch/v1':
        raise BackendError(f"the Job template must be kind Job, apiVersion batch/v1, not "
                           f"{data.get('kind')!r} {data.get('apiVersion')!r}", str(path))
    containers = (((data.get('spec') or {}).get('template') or {}).get('spec') or {}).get('containers')
    if not isinstance(containers, list) or not containers or not isinstance(containers[0], dict):
        raise BackendError('the Job template needs spec.template.spec.containers with at least one container',
                           str(path))
    data['_path'] = str(path)
    return data


def _placeholder(value: Any) -> bool:
    return isinstance(value, str) and value.strip().startswith('{') and value.strip().endswith('}')


def render_job(template: dict[str, Any], *, job_name: str, container_name: str, image: str, command: str,
               env: dict[str, str], namespace: str, run_id: str) -> dict[str, Any]:
    job = copy.deepcopy({k: v for k, v in template.items() if k != '_path'})
    job['apiVersion'], job['kind'] = 'batch/v1', 'Job'
    meta = job.setdefault('metadata', {}) or {}
    job['metadata'] = meta
    meta['name'] = job_name
    meta['namespace'] = namespace
    meta.pop('generateName', None)
    labels = {**(meta.get('labels') or {}), RUN_LABEL: run_id, 'app.kubernetes.io/managed-by': 'mlproj'}
    meta['labels'] = labels
    pod = job['spec']['template']
    pod_meta = pod.setdefault('metadata', {}) or {}
    pod['metadata'] = pod_meta
    pod_meta['labels'] = {**(pod_meta.get('labels') or {}), RUN_LABEL: run_id}
    pod_spec = pod['spec']
    pod_spec.setdefault('restartPolicy', 'Never')
    container = pod_spec['containers'][0]
    container['name'] = container_name
    container['image'] = image
    container['command'] = ['sh', '-c', command]
    container.pop('args', None)
    existing = [e for e in (container.get('env') or []) if isinstance(e, dict) and e.get('name') not in env]
    container['env'] = existing + [{'name': k, 'value': v} for k, v in env.items()]
    return job


def pod_env(run_env: dict[str, str]) -> dict[str, str]:
    env = dict(run_env)
    override = os.environ.get('KUBE_MLFLOW_TRACKING_URI')
    if override:
        env['MLFLOW_TRACKING_URI'] = override
    return env


# --------------------------------------------------------------------------------------------
# the image


def build_and_push(launch: Launch, repository: str, push: bool) -> tuple[str, str]:
    """Build the project image FROM docker_env.image, tag it ``repository:<hash>``, push it.

    Returns (image reference for the pod, image id or registry digest)."""
    from mlproj.envs import EnvContext
    from mlproj.envs import docker as dk
    from mlproj.envs.venv import run_step

    project = launch.project
    spec = project.env.docker
    where = str(project.mlproject_path or project.directory)
    if spec is None or not spec.image:
        raise BackendError('the kubernetes backend builds the image FROM docker_env.image, and this project has no '
                           'docker_env; add one, or set "build-image": false and "image"', where)
    engine = dk.find_engine()
    base_id = dk.image_id(engine, spec.image)
    if base_id is None:
        say(f'=== Pulling image {spec.image} ===')
        run_step([engine, 'pull', spec.image], f'pulling image {spec.image}', cwd=project.directory, where=where)
        base_id = dk.image_id(engine, spec.image)
        if base_id is None:
            raise EnvError(f'image {spec.image} cannot be inspected after pulling it', where)
    ctx = EnvContext(tracking_uri=launch.tracking_uri, run_id=launch.run_id, experiment_id=launch.experiment_id,
                     build_image=True)
    local_tag, image_id, digest = dk.build_image(engine, project, spec.image, base_id, ctx)
    remote = f'{repository}:{digest[:12]}'
    run_step([engine, 'tag', local_tag, remote], f'tagging image {remote}', cwd=project.directory, where=where)
    if not push:
        return remote, image_id
    say(f'=== Pushing image {remote} ===')
    run_step([engine, 'push', remote], f'pushing image {remote}', cwd=project.directory, where=where)
    out = run_step([engine, 'image', 'inspect', '--format', '{{json .RepoDigests}}', remote],
                   f'reading the registry digest of {remote}', cwd=project.directory, where=where)
    import json

    try:
        digests = json.loads(out.strip().splitlines()[-1]) or []
    except (ValueError, IndexError):
        digests = []
    name = repository.rsplit(':', 1)[0] if '/' not in repository.rsplit(':', 1)[-1] else repository
    for d in digests:
        if d.startswith(name + '@'):
            sha = d.split('@', 1)[1]
            return f'{remote}@{sha}', sha
    raise EnvError(f'{remote} was pushed but the engine reports no registry digest for it', where)


# --------------------------------------------------------------------------------------------
# the cluster


def api_client(context: str | None) -> Any:
    try:
        from kubernetes import config as kconfig
        from kubernetes.config.config_exception import ConfigException
    except ImportError:
        raise BackendError('the kubernetes backend needs the kubernetes client: pip install "mlproj[kubernetes]"') \
            from None
    try:
        # KUBECONFIG is read at call time (the client reads it once, at import)
        return kconfig.new_client_from_config(config_file=os.environ.get('KUBECONFIG') or None, context=context)
    except (ConfigException, OSError, TypeError, ValueError) as e:
        if context:
            raise BackendError(f"key 'kube-context': cannot use context {context!r}: {one_line(e)}", WHERE) from None
        try:  # MLflow's fallback: the pod's own service account
            from kubernetes.client import ApiClient, Configuration

            configuration = Configuration()
            kconfig.load_incluster_config(client_configuration=configuration)
            return ApiClient(configuration)
        except ConfigException:
            raise BackendError(f'no usable kubeconfig ({one_line(e)}) and not running in a cluster') from None


def api_error(e: BaseException, what: str, host: str) -> BackendError:
    from kubernetes.client.exceptions import ApiException

    if isinstance(e, ApiException):
        import json

        message = ''
        try:
            message = json.loads(e.body or '{}').get('message', '')
        except (ValueError, AttributeError):
            pass
        return BackendError(f'{what}: HTTP {e.status} {message or e.reason}'.strip(), host)
    errors = getattr(e, 'errors', None)
    if type(e).__name__ == 'ValidationError' and callable(errors):  # the client checks bodies (pydantic)
        first = errors()[0]
        field = '.'.join(str(p) for p in first.get('loc', ())[1:])
        return BackendError(f'the rendered Job does not match the batch/v1 schema: {field}: {first.get("msg")}',
                            'kube-job-template-path')
    reason = getattr(e, 'reason', None) or e
    return BackendError(f'cannot reach the Kubernetes API: {one_line(reason)}', host)


def _condition(status: Any, kind: str) -> Any:
    for c in (getattr(status, 'conditions', None) or []):
        if c.type == kind and c.status == 'True':
            return c
    return None


class KubernetesJob:
    def __init__(self, api: Any, name: str, namespace: str, run_id: str) -> None:
        from kubernetes import client

        self.api = api
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.name = name
        self.namespace = namespace
        self.run_id = run_id
        self.host = api.configuration.host
        self.description = f"Kubernetes Job '{namespace}/{name}'"
        self.deleted = False

    def _pods(self) -> list[Any]:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=f'{RUN_LABEL}={self.run_id}').items
        return sorted(pods, key=lambda p: (p.metadata.creation_timestamp or datetime.min.replace(tzinfo=timezone.utc),
                                           p.metadata.name))

    def _exit_code(self) -> int | None:
        for pod in reversed(self._pods()):
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                term = cs.state.terminated if cs.state else None
                if term is not None and term.exit_code is not None:
                    return int(term.exit_code)
        return None

    def state(self) -> JobState:
        from kubernetes.client.exceptions import ApiException

        try:
            job = self.batch.read_namespaced_job_status(self.name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return JobState(KILLED, None, 'the Job was deleted')
            raise api_error(e, 'reading the Job', self.host) from None
        status = job.status
        if _condition(status, 'Complete'):
            return JobState(FINISHED, 0, 'Complete')
        failed = _condition(status, 'Failed')
        if failed:
            detail = 'Failed' + (f' ({failed.reason}: {failed.message})' if failed.reason else '')
            try:
                code = self._exit_code()
            except Exception:
                code = None
            return JobState(FAILED, code, detail)
        if status is None or not status.start_time:
            return JobState(SCHEDULED)
        return JobState(RUNNING)

    def follow_logs(self, ended: threading.Event) -> None:
        from kubernetes.client.exceptions import ApiException

        followed: set[str] = set()
        out = getattr(sys.stdout, 'buffer', None)
        while True:
            last = ended.is_set()
            pod = next((p for p in self._pods() if p.metadata.name not in followed
                        and p.status and p.status.phase in ('Running', 'Succeeded', 'Failed')), None)
            if pod is None:
                if last:
                    return
                ended.wait(0.5)
                continue
            followed.add(pod.metadata.name)
            try:
                resp: Any = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace, follow=True,
                                                              _preload_content=False)  # urllib3 response
            except ApiException as e:
                if e.status in (400, 404):  # not started yet / already gone: try again later
                    followed.discard(pod.metadata.name)
                    if last:
                        return
                    ended.wait(0.5)
                    continue
                raise
            try:
                for chunk in resp.stream(4096, decode_content=True):
                    if out is not None:
                        out.write(chunk)
                    else:
                        sys.stdout.write(chunk.decode('utf-8', 'replace'))
                    sys.stdout.flush()
            finally:
                resp.release_conn()

    def stop(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(self.name, self.namespace,
                                             body=client.V1DeleteOptions(propagation_policy='Background'))
        except ApiException as e:
            if e.status != 404:
                raise api_error(e, 'deleting the Job', self.host) from None
        self.deleted = True

    def kill(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(self.name, self.namespace, grace_period_seconds=0,
                                             body=client.V1DeleteOptions(propagation_policy='Background'))
        except ApiException as e:
            if e.status != 404:
                raise api_error(e, 'deleting the Job', self.host) from None


# --------------------------------------------------------------------------------------------
# submission


def _is_local_store(uri: str) -> bool:
    return uri.startswith(('file:', 'sqlite:')) or '://' not in uri


def submit(launch: Launch) -> RemoteSubmittedRun:
    config = validate_config(launch.request.backend_config, CONFIG_KEYS, 'kubernetes')
    if 'kube-job-template-path' not in config:
        raise BackendError("missing key 'kube-job-template-path' (the Job YAML template)", WHERE)
    build = config.get('build-image', True)
    if build and 'repository-uri' not in config:
        raise BackendError("missing key 'repository-uri' (where the project image is pushed); or set "
                           '"build-image": false and "image"', WHERE)
    if not build and not (config.get('image') or config.get('repository-uri')):
        raise BackendError("missing key 'image': with \"build-image\": false the Job runs an existing image", WHERE)
    template = load_template(config['kube-job-template-path'], launch.request.cwd)
    namespace = (template.get('metadata') or {}).get('namespace') or config.get('namespace') or 'default'
    context = config.get('kube-context')
    api = api_client(context)
    env = pod_env(dict(launch.run_env))
    if _is_local_store(env.get('MLFLOW_TRACKING_URI', '')):
        say(f"mlproj: warning: the tracking store {env.get('MLFLOW_TRACKING_URI')} is local to this machine; "
            'the pod cannot reach it unless the path is mounted: use an HTTP tracking server or set '
            'KUBE_MLFLOW_TRACKING_URI')

    tags: dict[str, str] = {}
    if build:
        image, image_id = build_and_push(launch, config['repository-uri'], config.get('push-image', True))
        tags.update({PROJECT_ENV: 'docker', DOCKER_IMAGE_URI: image.split('@', 1)[0],
                     DOCKER_IMAGE_ID: image_id})
    else:
        image = config.get('image') or config['repository-uri']
        tags[DOCKER_IMAGE_URI] = image
    name_base = _dns_label(launch.project.name or launch.project_dir.name or 'mlproj', 40)
    job_name = f"{name_base}-{time.strftime('%Y%m%d-%H%M%S')}-{launch.run_id[:6]}"
    body = render_job(template, job_name=job_name, container_name=_dns_label(name_base, 63), image=image,
                      command=launch.command, env=env, namespace=namespace, run_id=launch.run_id)
    tags.update({KUBERNETES_JOB_NAME: job_name, KUBERNETES_NAMESPACE: namespace})
    if context:
        tags[KUBERNETES_CONTEXT] = context
    launch.tracker.set_tags(launch.run_id, tags)
    job = KubernetesJob(api, job_name, namespace, launch.run_id)
    try:
        job.batch.create_namespaced_job(namespace, body)  # type: ignore[arg-type]  # a dict body is accepted
    except Exception as e:
        raise api_error(e, 'the API server refused the Job', job.host) from None
    started()  # the Job exists: a signal from here on cancels it (mlproj.backends.signals)
    launch.source.cleanup()  # the code is in the image
    say(f"=== Created Kubernetes Job '{job_name}' in namespace '{namespace}' for run with ID '{launch.run_id}' ===")
    run = RemoteSubmittedRun(launch, job, poll_interval=float(config.get('poll-interval', 2.0)))
    if launch.request.synchronous:
        run.start()
    return run


def cancel_recorded(tags: Mapping[str, str]) -> str | None:
    """Delete the Job recorded in ``mlproj.kubernetes.*`` (``mlproj ci cancel``), with its context."""
    name, namespace = tags.get(KUBERNETES_JOB_NAME), tags.get(KUBERNETES_NAMESPACE)
    if not name or not namespace:
        return None
    api = api_client(tags.get(KUBERNETES_CONTEXT))
    return cancel_job(KubernetesJob(api, name, namespace, ''))
