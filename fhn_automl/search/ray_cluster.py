"""Joining or starting Ray for a search, with the Ray Train settings every worker gets."""

from __future__ import annotations

import os

#: Ray Train's controller polls workers every 2 s by default and each report waits for the poll;
#: 0.2 s cut a smoke trial from 33.5 s to 14.9 s (FACTS.md).
HEALTH_CHECK_INTERVAL_S = "0.2"
#: Ray Train V2 settings the search sets (unless the environment already does) on the driver and,
#: through the job's runtime env, on every worker. Per Train trial Ray starts ~7 processes (controller,
#: worker, placement-group cleaner, dataset manager, synchronization actor, report queue, preemption
#: watcher); each costs 1-3 s of CPU on two cores. The preemption watcher only helps on spot nodes
#: that announce their draining (FailureConfig still restarts a trial whose node vanishes), and
#: Train's Prometheus metrics have no reader here: both off. Set them to 1 in the environment to keep them.
TRAIN_ENV_DEFAULTS = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": HEALTH_CHECK_INTERVAL_S,
                      "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
                      "RAY_TRAIN_METRICS_ENABLED": "0"}


def init_ray(address: str | None):
    """Join ``address`` (or ``RAY_ADDRESS``) if given, else start a local Ray on this machine."""
    for key, value in TRAIN_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # Tune would otherwise change into each trial's folder and the search's relative paths with it.
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
    import ray

    if ray.is_initialized():
        return ray
    runtime_env = {"env_vars": {key: os.environ[key] for key in TRAIN_ENV_DEFAULTS}}
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        # Under `ray job submit` the job's runtime env (jobs/runtime_env.yaml) already reaches every
        # worker, and Ray refuses a second one that sets the same keys.
        runtime_env = None
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        # The dashboard stays on: without it, trials stopped early leaked placement groups (FACTS.md).
        ray.init(runtime_env=runtime_env, log_to_driver=False, include_dashboard=True)
    return ray
