"""Up-front checks of the two network endpoints a search talks to: the Ray cluster and MLflow.

Without them a wrong ``--address`` made ``ray.init`` wait for minutes (over 10 on a closed port) and
an MLflow server that is down made every client call retry for about 4 minutes (MLflow's default:
7 retries with exponential backoff, 120 s per request). Both are now asked first, with a timeout of
a few seconds, and answer with a named error that says what to do.

No Ray and no MLflow imports here: a TCP connect and an HTTP GET from the standard library.
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

#: Seconds the up-front checks wait for an answer.
CONNECT_TIMEOUT_S = 5.0
#: MLflow's HTTP client settings during a search or post-stage (unless the environment sets them):
#: 10 s per request and 2 retries (2 s, 4 s backoff), so a server that stops answering costs seconds
#: (refused) to ~40 s (silent) per call instead of minutes. A search keeps its results on disk and
#: ``--sync-tracking`` replays what did not reach MLflow.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}
#: Tracking-store schemes MLflow itself understands; installed plugins add theirs (entry points).
_MLFLOW_SCHEMES = {"", "file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks",
                   "databricks-uc", "uc"}
_DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}


class EndpointUnreachableError(RuntimeError):
    """A Ray cluster or MLflow tracking store that does not answer (or cannot be used as given)."""


class RayAddressUnreachableError(EndpointUnreachableError):
    """Nothing answers at the Ray address (``--address`` / ``RAY_ADDRESS``)."""


class TrackingStoreUnreachableError(EndpointUnreachableError):
    """The MLflow tracking URI names no store that answers (server down, no such SQLite file)."""


def check_ray_address(address: str | None, *, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise ``RayAddressUnreachableError`` unless a TCP connect to ``address`` succeeds in time.

    ``None`` (with no ``RAY_ADDRESS``), ``local`` and ``auto`` are left to Ray: the first two start a
    local Ray, and ``auto`` fails within seconds when it finds no running cluster.
    """
    address = address or os.environ.get("RAY_ADDRESS")
    if not address or address in ("auto", "local"):
        return
    parsed = urlparse(address if "://" in address else f"ray-gcs://{address}")
    default_port = 10001 if parsed.scheme == "ray" else 6379  # Ray Client / GCS defaults
    try:
        host, port = parsed.hostname, parsed.port or default_port
    except ValueError:
        raise RayAddressUnreachableError(f"Ray address {address!r} is not HOST:PORT") from None
    if not host:
        raise RayAddressUnreachableError(f"Ray address {address!r} names no host; use HOST:PORT (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            answer = _http2_settings_answer(connection, timeout_s) if not _ray_uses_tls() else None
    except OSError as exc:
        raise RayAddressUnreachableError(
            f"no Ray cluster answers at {host}:{port} (--address / RAY_ADDRESS {address!r}) within "
            f"{timeout_s:g} s: {exc.strerror or exc}; start it with `ray start --head --port {port}` on that "
            "host, or leave --address out to run on a local Ray") from None
    if answer is not None and answer is not True:
        raise RayAddressUnreachableError(
            f"{host}:{port} (--address / RAY_ADDRESS {address!r}) accepts TCP but is not a Ray cluster: it did "
            f"not answer Ray's protocol (gRPC over HTTP/2) within {timeout_s:g} s ({answer}); check the port "
            "(the GCS port of `ray start --head`, 6379 by default)")


#: The client's opening of an HTTP/2 connection (RFC 9113 3.4): the preface, then an empty SETTINGS frame.
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _http2_settings_answer(connection: socket.socket, timeout_s: float) -> bool | str:
    """True when the peer answers an HTTP/2 preface with a SETTINGS frame, as every gRPC server (Ray's
    GCS and Ray Client) does at once; else what it did instead. A TCP connect alone passed for any
    listener, and ``ray.init`` then waited for more than 7 minutes on one that never spoke."""
    connection.settimeout(timeout_s)
    try:
        connection.sendall(_HTTP2_PREFACE)
        header = b""
        while len(header) < 9:
            chunk = connection.recv(9 - len(header))
            if not chunk:
                return "it closed the connection"
            header += chunk
    except socket.timeout:
        return "no answer"
    except OSError as exc:
        return f"{exc.strerror or exc}"
    return True if header[3] == 0x04 else f"it answered {header[:9]!r}"


def _ray_uses_tls() -> bool:
    """Ray's TLS mode (``RAY_USE_TLS``): the plain HTTP/2 probe cannot speak to it, so only TCP is checked."""
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def check_tracking_store(uri: str, *, timeout_s: float = CONNECT_TIMEOUT_S, must_exist: bool = False) -> None:
    """Raise ``TrackingStoreUnreachableError`` unless the MLflow store at ``uri`` can be reached.

    ``http(s)``: a GET of the server's ``/health`` (unauthenticated also under the basic-auth app);
    SQL databases: a TCP connect to their port; ``sqlite``: with ``must_exist`` (readers such as the
    post-stage) the file must be there, so a typo does not create an empty store. Also sets MLflow's
    HTTP timeout and retries (``MLFLOW_HTTP_DEFAULTS``) where the environment leaves them unset.
    """
    parsed = urlparse(uri)
    scheme = parsed.scheme.split("+")[0].lower()
    if scheme in ("http", "https"):
        for key, value in MLFLOW_HTTP_DEFAULTS.items():
            os.environ.setdefault(key, value)
        health = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(health, timeout=timeout_s) as response:  # noqa: S310 (http(s) only)
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TrackingStoreUnreachableError(
                f"no MLflow server answers at {uri} ({health}: {reason}) within {timeout_s:g} s; start it "
                "(jobs/README.md) or point --tracking-uri / MLFLOW_TRACKING_URI at a running one") from None
        if status != 200:
            raise TrackingStoreUnreachableError(f"{health} answered HTTP {status}: not a healthy MLflow server")
    elif scheme in _DATABASE_PORTS:
        host, port = parsed.hostname or "localhost", parsed.port or _DATABASE_PORTS[scheme]
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                pass
        except OSError as exc:
            raise TrackingStoreUnreachableError(
                f"the MLflow database at {host}:{port} ({scheme}) does not answer within {timeout_s:g} s: "
                f"{exc.strerror or exc}") from None
    elif scheme == "sqlite":
        path = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
        if must_exist and path and path != ":memory:" and not Path(path).is_file():
            raise TrackingStoreUnreachableError(
                f"no MLflow store at {uri} (no file {path}); pass the --tracking-uri the search used "
                "(its summary line prints it)")
    elif scheme not in _MLFLOW_SCHEMES and scheme not in _plugin_schemes():
        raise TrackingStoreUnreachableError(
            f"tracking URI {uri!r}: MLflow has no store for scheme {scheme!r}; use sqlite:///PATH, "
            "http(s)://HOST:PORT or a database URI (postgresql://, mysql://)")


def _plugin_schemes() -> set[str]:
    """Schemes that installed MLflow plugins register for tracking stores."""
    return {entry.name for entry in importlib.metadata.entry_points(group="mlflow.tracking_store")}
