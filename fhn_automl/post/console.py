"""What a person reads at the end of a search or a post-stage: the front as a table, and where to look.

Plain text for a terminal and for ``ray job logs``: the Pareto front per problem (error, latency with
its spread, multiply-adds, backend), the registered name and aliases, the report folder, and the
MLflow address that opens the experiment in the "Model training" view (``workflowType=
machine_learning``; MLflow 3.17 otherwise opens its GenAI view), with the command that starts the UI
for a local store.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

UI_PORT = 5000


def front_table(rows: list[dict[str, Any]]) -> str:
    """The front of one problem as an aligned text table, most accurate first."""
    header = ("#", "layers", "val mean err", "val max err", "ns/point", "spread (ns)", "MACs", "backend")
    lines = [header]
    for position, row in enumerate(rows, start=1):
        low, high = row.get("time_min_s"), row.get("time_max_s")
        spread = f"{low * 1e9:.1f}-{high * 1e9:.1f}" if low is not None and high is not None else "-"
        lines.append((str(position), str(row["layers"]), f"{row['mean_err']:.3e}",
                      "-" if row.get("max_err") is None else f"{row['max_err']:.3e}",
                      f"{row['time_per_point_s'] * 1e9:.1f}", spread, str(row["macs"]), str(row["backend"])))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def mlflow_ui_address(tracking_uri: str, experiment_id: str | None) -> tuple[str, str | None]:
    """(the experiment's address in the MLflow UI, the command that starts the UI; None for a server)."""
    server = tracking_uri.startswith(("http://", "https://"))
    base = tracking_uri.rstrip("/") if server else f"http://127.0.0.1:{UI_PORT}"
    path = f"/#/experiments/{experiment_id}/runs" if experiment_id else "/#/experiments"
    address = f"{base}{path}?workflowType=machine_learning"
    if server:
        return address, None
    mlflow = Path(sys.executable).with_name("mlflow")
    return address, f"{mlflow if mlflow.exists() else 'mlflow'} ui --backend-store-uri {tracking_uri} --port {UI_PORT}"


def where_to_look(result: Any, tracking_uri: str) -> str:
    """The closing block: the fronts, the registered aliases, the report folder and the MLflow address."""
    lines = []
    for problem, rows in result.fronts.items():
        lines += [f"Pareto front, {problem}: {len(rows)} model(s)", front_table(rows), ""]
    if result.registered:
        by_name: dict[str, list[str]] = {}
        for entry in result.registered:
            by_name.setdefault(entry["name"], []).append(f"@{entry['alias']} (v{entry['version']})")
        for name, aliases in by_name.items():
            lines.append(f"registered:  {name} {', '.join(aliases)}   e.g. models:/{name}{aliases[0].split(' ')[0]}")
    lines.append(f"report:      {result.out_dir}")
    address, command = mlflow_ui_address(tracking_uri, getattr(result, "experiment_id", None))
    lines.append(f"MLflow:      {address}")
    if command:
        lines.append(f"             (start the UI first: {command})")
    return "\n".join(lines)


__all__ = ["front_table", "mlflow_ui_address", "where_to_look"]
