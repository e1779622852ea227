"""A closed Ray port or MLflow server is a named error within seconds, not a hang (issue 8, item 6)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from fhn_automl.search.endpoints import (RayAddressUnreachableError, TrackingStoreUnreachableError,
                                         check_ray_address, check_tracking_store)


@pytest.fixture
def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):
        pass


@pytest.fixture
def health_server():
    server = HTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_closed_ray_port_is_a_named_error(closed_port):
    with pytest.raises(RayAddressUnreachableError, match=f"127.0.0.1:{closed_port}"):
        check_ray_address(f"127.0.0.1:{closed_port}", timeout_s=2)
    with pytest.raises(RayAddressUnreachableError, match="ray start --head"):
        check_ray_address(f"ray://127.0.0.1:{closed_port}", timeout_s=2)
    check_ray_address(None)  # a local Ray: nothing to check
    check_ray_address("auto")


def test_tracking_store_checks(closed_port, health_server, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    with pytest.raises(TrackingStoreUnreachableError, match="no MLflow server answers"):
        check_tracking_store(f"http://127.0.0.1:{closed_port}", timeout_s=2)
    check_tracking_store(health_server)  # answers /health
    import os

    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # minutes of retries cut to seconds
    with pytest.raises(TrackingStoreUnreachableError, match="HTTP 404"):
        check_tracking_store(health_server + "/not-mlflow")
    missing = f"sqlite:///{tmp_path / 'nope' / 'mlflow.db'}"
    check_tracking_store(missing)  # a search creates its store
    with pytest.raises(TrackingStoreUnreachableError, match="no MLflow store"):
        check_tracking_store(missing, must_exist=True)  # a reader does not
    with pytest.raises(TrackingStoreUnreachableError, match="scheme 'bogus'"):
        check_tracking_store("bogus://x")
    with pytest.raises(TrackingStoreUnreachableError, match="postgresql"):
        check_tracking_store(f"postgresql://u:p@127.0.0.1:{closed_port}/db", timeout_s=2)


def test_search_and_post_commands_fail_fast(closed_port, make_search_file, tmp_path, monkeypatch, capsys):
    from fhn_automl.pipeline import main as search_main
    from fhn_automl.post.__main__ import main as post_main

    monkeypatch.chdir(tmp_path)
    search_file = make_search_file(tmp_path, ["silu-8"])
    assert search_main([str(search_file), "--address", f"127.0.0.1:{closed_port}", "--no-post",
                        "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]) == 2
    assert f"no Ray cluster answers at 127.0.0.1:{closed_port}" in capsys.readouterr().err
    assert search_main([str(search_file), "--tracking-uri", f"http://127.0.0.1:{closed_port}", "--no-post"]) == 2
    assert "no MLflow server answers" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # checked before any dataset was built
    assert post_main(["problem_b_s-smoke", "--tracking-uri", f"http://127.0.0.1:{closed_port}"]) == 2
    assert "no MLflow server answers" in capsys.readouterr().err
    assert post_main(["problem_b_s-smoke", "--tracking-uri", f"sqlite:///{tmp_path / 'typo.db'}"]) == 2
    assert "no MLflow store" in capsys.readouterr().err and not (tmp_path / "typo.db").exists()


def _listener(answer: bytes | None) -> tuple[socket.socket, int]:
    """A TCP listener that accepts and then sends ``answer`` (None: says nothing, as a port that is
    not Ray's may)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        try:
            connection, _ = server.accept()
        except OSError:
            return
        with connection:
            connection.recv(64)
            if answer is not None:
                connection.sendall(answer)
            threading.Event().wait(2)

    threading.Thread(target=serve, daemon=True).start()
    return server, server.getsockname()[1]


@pytest.mark.parametrize("answer, words", [
    (None, "no answer"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "it answered"),
])
def test_a_port_that_accepts_tcp_but_is_not_ray_is_named_within_the_deadline(answer, words):
    """Issue 21 item 5: the TCP pre-check passed such a port and ray.init then hung for > 420 s."""
    import time

    server, port = _listener(answer)
    started = time.perf_counter()
    with server, pytest.raises(RayAddressUnreachableError, match=f"accepts TCP but is not a Ray cluster.*{words}"):
        check_ray_address(f"127.0.0.1:{port}", timeout_s=0.5)
    assert time.perf_counter() - started < 3


def test_an_http2_server_passes_the_probe():
    """What a gRPC server (Ray's GCS) sends first: a SETTINGS frame."""
    server, port = _listener(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    with server:
        check_ray_address(f"127.0.0.1:{port}", timeout_s=2)


class _Stalls(BaseHTTPRequestHandler):
    """An MLflow server that answers /health and then stalls on every API call."""

    def do_GET(self):  # noqa: N802
        if self.path == "/health":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            threading.Event().wait(3)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("command", ["post", "pull"])
def test_post_and_pull_name_an_mlflow_that_stalls(command, tmp_path, monkeypatch, capsys):
    """Issue 21 item 5: the search exited 3; post and pull ended in raw MlflowException tracebacks."""
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stalls)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    try:
        if command == "post":
            from fhn_automl.post.__main__ import main

            code = main(["some-smoke", "--tracking-uri", uri, "--out", str(tmp_path / "out"), "--device", "cpu",
                         "--backend", "eager", "--quiet"])
        else:
            from fhn_automl.pull import main

            code = main(["problem_b_s", "--to", str(tmp_path / "out"), "--tracking-uri", uri])
    finally:
        server.shutdown()
        server.server_close()
    err = capsys.readouterr().err
    assert code == 2 and "the MLflow tracking store did not answer" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
