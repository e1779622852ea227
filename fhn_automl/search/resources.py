"""What each trial gets on the cluster: worker slots per node, and how many trials fit at once."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

from fhn_automl.search.space import Resources


class UnsatisfiableResourcesError(RuntimeError):
    """A trial asks for more than the cluster can ever give; raised before anything is launched."""


@dataclasses.dataclass(frozen=True)
class ResourcePlan:
    """What each trial gets on this cluster and how many trials fit at once."""

    workers: int
    per_worker: dict[str, float]
    use_gpu: bool
    concurrent_trials: int
    cluster: dict[str, float]

    @property
    def device(self) -> str:
        return "cuda" if self.use_gpu else "cpu"


def plan_resources(resources: Resources, nodes: list[Mapping[str, float]]) -> ResourcePlan:
    """Fit ``resources`` onto the nodes (each a mapping of resource totals) or raise why not.

    A Train worker must fit on one node; a trial needs ``workers`` such slots somewhere in the cluster.
    Counting slots node by node (not the cluster total) is what catches "4 CPUs per worker on nodes of
    2" before Tune would wait forever for it.
    """
    has_gpu = any(node.get("GPU", 0) > 0 for node in nodes)
    if resources.use_gpu == "always" and not has_gpu:
        raise UnsatisfiableResourcesError(
            "the search file says resources.use_gpu: always but the cluster has no GPU")
    use_gpu = resources.gpus_per_worker > 0 and (resources.use_gpu == "always" or
                                                 (resources.use_gpu == "auto" and has_gpu))
    per_worker = {"CPU": resources.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = resources.gpus_per_worker
    slots = 0
    for node in nodes:
        slots += min(math.floor(node.get(name, 0.0) / need + 1e-9) for name, need in per_worker.items())
    cluster = {name: sum(node.get(name, 0.0) for node in nodes) for name in ("CPU", "GPU")}
    if slots < resources.workers:
        largest = max((dict(node) for node in nodes), key=lambda n: n.get("CPU", 0), default={})
        raise UnsatisfiableResourcesError(
            f"a trial needs {resources.workers} worker(s) of {per_worker}, but the cluster "
            f"(totals {cluster}, largest node CPU={largest.get('CPU', 0)} GPU={largest.get('GPU', 0)}) "
            f"fits only {slots}; lower resources.workers / cpus_per_worker / gpus_per_worker in the "
            f"search file or add nodes")
    return ResourcePlan(workers=resources.workers, per_worker=per_worker, use_gpu=use_gpu,
                        concurrent_trials=max(1, slots // resources.workers), cluster=cluster)


def cluster_nodes() -> list[dict[str, float]]:
    """Resource totals of the live nodes of the connected Ray cluster."""
    import ray

    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]
