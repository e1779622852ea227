"""The names of fhn_automl's MLflow layout: run tags, their values and the model's artifact path.

The search writes them (``tracking``, ``monitor``) and the post-stage reads them (``post.runs``,
``post.stage``); both import them from here, a module with no imports, so a rename cannot leave
one side reading a tag the other no longer writes.
"""

ROLE_TAG = "fhn_automl.role"
#: Values of ``ROLE_TAG``: the search's parent run, a trial's child run, the post-stage's run, and
#: the run of ``python -m fhn_automl.reproduce`` (which also tags the thesis table it reproduced).
SEARCH_ROLE = "search"
TRIAL_ROLE = "trial"
POST_ROLE = "post"
REPRODUCE_ROLE = "reproduce"
THESIS_TABLE_TAG = "fhn_automl.thesis_table"
#: ``finished`` | ``diverged`` | ``error`` on a trial's run.
STATUS_TAG = "fhn_automl.trial_status"
TRIAL_STATUSES = ("finished", "diverged", "error")
TRIAL_NAME_TAG = "fhn_automl.trial_name"
#: Set to ``true`` on a trial that the scheduler (ASHA) stopped before its last step.
STOPPED_EARLY_TAG = "fhn_automl.stopped_early"
#: Set to ``true`` on a finished trial whose model did not reach MLflow (the driver stopped between
#: the trial's end and the upload); ``--sync-tracking`` / ``--resume`` attach it from the Tune folder.
MODEL_MISSING_TAG = "fhn_automl.model_missing"
SEARCH_TAG = "fhn_automl.search"
BUDGET_TAG = "fhn_automl.budget"
PARENT_TAG = "mlflow.parentRunId"
#: JSON {file name: sha256 hex} of a trial's model files (spec.json, weights.pt, model.ts), set when
#: the model is logged; the post-stage, ``pull`` and ``bench --registered`` refuse files that differ.
MODEL_DIGESTS_TAG = "fhn_automl.model_sha256"
#: Where a trial's model files (spec.json, weights.pt, model.ts) live among its run's artifacts.
MODEL_ARTIFACT_PATH = "model"
#: Inside each trial's logged MLflow model: fhn_automl's own model files (what ``pull`` copies out).
MLFLOW_MODEL_FILES = "fhn_automl"
#: The experiment tag the MLflow 3 UI reads for an experiment's view where its sidebar's
#: GenAI / Model training switch is off (values from the UI's source: ``genai_development`` |
#: ``custom_model_development``).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
TRAINING_EXPERIMENT_KIND = "custom_model_development"

#: Every fhn_automl tag starts with this; the registry's version tags are ``TAG_PREFIX + <figure>``
TAG_PREFIX = "fhn_automl."
#: A trial's error (last line of its traceback) and how often its workers were restarted
ERROR_TAG = TAG_PREFIX + "error"
WORKER_RESTARTS_TAG = TAG_PREFIX + "worker_restarts"
#: A model's problem, kind and layer notation (MLflow models, registry versions)
PROBLEM_TAG = TAG_PREFIX + "problem"
KIND_TAG = TAG_PREFIX + "kind"
LAYERS_TAG = TAG_PREFIX + "layers"
#: Where a search ran: device, Python, host and the checkout's commit
DEVICE_TAG = TAG_PREFIX + "device"
PYTHON_TAG = TAG_PREFIX + "python"
HOST_TAG = TAG_PREFIX + "host"
GIT_COMMIT_TAG = TAG_PREFIX + "git_commit"
#: Where a search keeps its Tune state (the resolved --storage): one storage per experiment
STORAGE_TAG = TAG_PREFIX + "storage"
