"""The post-stage's errors: each says what went wrong and what to do about it.

The CLIs turn any ``PostStageError`` into one line on stderr and a non-zero exit, so a user sees the
remedy instead of a traceback.
"""

from __future__ import annotations


class PostStageError(RuntimeError):
    """Base class: bad input to the post-stage (not a bug)."""


class ExperimentNotFoundError(PostStageError):
    """The MLflow experiment named on the command line does not exist in the tracking store."""


class NoFinishedTrialsError(PostStageError):
    """The experiment holds no finished trial with a model artifact and a validation error."""


class NoRegisteredModelsError(PostStageError):
    """``pull`` was asked for a problem / alias that has no registered model version."""


class BackendNotInstalledError(PostStageError):
    """A compile backend (TensorRT, CUDA) was asked for explicitly but cannot run on this machine."""


class ForeignOutputFolderError(PostStageError):
    """An output folder (``--out``, ``--to``) holds files fhn_automl did not write: it is never replaced."""


class InvalidRequestError(PostStageError):
    """A setting the post-stage cannot use as given (fp16 on a CPU, an unknown backend name)."""


class TrackingStoreError(PostStageError):
    """The MLflow tracking store does not answer, or names no store (no such SQLite file)."""


class ModelDigestError(PostStageError):
    """A model file (``model.ts``, ``weights.pt``, ``spec.json``) differs from the digest recorded when
    the model was logged: it was changed or swapped since, and is not loaded."""


def tracking_failure(exc: BaseException) -> str | None:
    """One line naming MLflow's failure when ``exc`` comes from MLflow or its HTTP client (a server
    that answers ``/health`` but stalls on every call ends in ``MlflowException`` after its retries);
    None for any other error. The CLIs print it instead of a traceback and exit 2."""
    if type(exc).__module__.split(".")[0] not in ("mlflow", "requests", "urllib3"):
        return None
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return (f"the MLflow tracking store did not answer as it should ({type(exc).__name__}: {text[:300]}); "
            "check the server or --tracking-uri and run again (the output folder was not written)")


def cli_error_message(exc: BaseException) -> str | None:
    """What a post-stage CLI (``post``, ``pull``) prints for ``exc`` before exiting 2: a named
    ``PostStageError`` or an MLflow failure (``tracking_failure``); None for anything else (a bug:
    let it raise)."""
    return str(exc) if isinstance(exc, PostStageError) else tracking_failure(exc)
