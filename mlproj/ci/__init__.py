"""CI helpers behind the composite GitHub Action (``action.yml``) and ``mlproj ci``.

* ``gha``          the Actions runtime: event JSON, file commands (outputs, summary), masking,
                   the environment handed to project code.
* ``markdown``     the run report rendered for the step summary, the PR comment and the check run.
* ``findings``     lint findings read back from workflow-command lines, batched for the Checks API.
* ``github``       PyGithub: sticky PR comment, commit status, check run with annotations.
* ``runstep``      ``mlproj ci run``: run a project, forward cancellation, write outputs and summary.
* ``state``        the small JSON file the action's steps hand to each other.
* ``cache``        the environment-cache key for ``actions/cache``.
* ``cancel``       ``mlproj ci cancel``: the fallback that stops a run left behind by a cancelled job.

Nothing here imports PyGithub, MLflow or databricks-sdk at module level.
"""
from __future__ import annotations
