"""Joining or starting Ray for a search, with the Ray Train settings every worker gets.

A local search (no ``--address``, no ``RAY_ADDRESS``, or ``local``) embeds a Ray of its own that is
reachable from this machine only and ends with the search:

- Loopback: Ray 2.60's GCS, raylet, object manager, core workers and agents listen on all
  interfaces (the runtime-env agent on the node's address) unless the node's address is a loopback
  one. Ray gives a node the loopback
  address where it runs single-machine only (its ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` switch, read
  once at import), so ``init_ray`` turns that switch off while ``ray.init`` starts the node; the
  dashboard is asked for 127.0.0.1 explicitly, Gloo for the ``lo`` interface. Left open: the
  TCPStore Ray Train's torch process group opens in each trial, which torch binds to all interfaces
  (README, "Reliability"). tests/search/test_local_ray.py lists what listens.
- Fate: Ray already ties its head processes to the driver (``PR_SET_PDEATHSIG``); ``ray_watchdog``
  ends the raylet's children (agents, workers) within seconds of a killed driver instead of a minute.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess

from fhn_automl.search.ray_watchdog import start_watchdog

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
#: The dashboard of an embedded Ray: this machine only (job submission runs code for whoever reaches it).
LOCAL_DASHBOARD_HOST = "127.0.0.1"
#: The loopback interface's name on Linux, where Gloo is told to listen in an embedded Ray.
LOOPBACK_INTERFACE = "lo"

logger = logging.getLogger(__name__)
_watchdog: subprocess.Popen | None = None


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
    if address and address != "local":
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        _start_local_ray(ray, runtime_env)
    return ray


def _start_local_ray(ray, runtime_env: dict | None) -> None:
    """Start an embedded Ray on loopback whose processes end with this one."""
    from ray._private import ray_constants

    if runtime_env is not None and "GLOO_SOCKET_IFNAME" not in os.environ and \
            LOOPBACK_INTERFACE in {name for _, name in socket.if_nameindex()}:
        # Gloo (Train's CPU process group) listens on the address of the host's name unless told
        # an interface; on most hosts that name resolves to a network address.
        runtime_env = {"env_vars": {**runtime_env["env_vars"], "GLOO_SOCKET_IFNAME": LOOPBACK_INTERFACE}}
    cluster_mode = ray_constants.ENABLE_RAY_CLUSTER
    # Off, Ray gives the node 127.0.0.1 (::1 on an IPv6-only host) and binds every server there;
    # read by ray.init only while it picks the node's address.
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        # address="local": always a Ray of its own, never one found through /tmp/ray/ray_current_cluster.
        # The dashboard stays on: without it, trials stopped early leaked placement groups (FACTS.md).
        ray.init(address="local", runtime_env=runtime_env, log_to_driver=False, include_dashboard=True,
                 dashboard_host=LOCAL_DASHBOARD_HOST)
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster_mode
    _watch(ray._private.worker._global_node)


def _watch(node) -> None:
    """Hand the pids of the head processes this driver started to its watchdog (started once)."""
    global _watchdog
    if _watchdog is None or _watchdog.poll() is not None:
        _watchdog = start_watchdog()
        if _watchdog is None:
            logger.warning("no /proc here: Ray's agents may outlive a killed search by a minute")
            return
    pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    _watchdog.stdin.write("".join(f"{pid}\n" for pid in pids).encode())
    _watchdog.stdin.flush()
