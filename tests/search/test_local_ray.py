"""Issue 21 item 9: the Ray a local search embeds listens on loopback only and ends with the search.

Each test starts a real driver process that starts Ray as a search without ``--address`` does
(``init_ray(None)``) and runs two tasks, so core workers are up too; then reads what its processes
listen on, or SIGKILLs it. Linux only (``/proc``), like Ray's own fate-sharing.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")]

DRIVER = """
import time
from fhn_automl.search.ray_cluster import init_ray
ray = init_ray(None)
ray.get([ray.remote(lambda: 1).remote() for _ in range(2)])
print("ready", flush=True)
time.sleep(600)
"""
REPO = Path(__file__).resolve().parents[2]
#: Seconds a SIGKILLed search may leave its Ray processes behind (Ray 2.60 alone: about 64 s).
GONE_WITHIN_S = 15


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent, start time, state) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2:].split()
    return int(rest[1]), int(rest[19]), rest[0]


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "(gone)"


def _tree(root: int) -> dict[int, int]:
    """``{pid: start time}`` of ``root`` and every process below it."""
    parents = {int(p.name): s for p in Path("/proc").iterdir() if p.name.isdigit() and (s := _stat(int(p.name)))}
    tree, stack = {root: parents[root][1]}, [root]
    while stack:
        parent = stack.pop()
        for pid, (ppid, started, _) in parents.items():
            if ppid == parent and pid not in tree:
                tree[pid] = started
                stack.append(pid)
    return tree


def _sockets() -> dict[str, tuple[str, str]]:
    """``{inode: (local address, protocol)}`` of TCP listeners and bound UDP sockets."""
    found = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if proto.startswith("tcp") and state != "0A":  # 0A: LISTEN
                continue
            raw = bytes.fromhex(local.split(":")[0])
            packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # host-order words
            family = socket.AF_INET if len(packed) == 4 else socket.AF_INET6
            found[inode] = (socket.inet_ntop(family, packed), proto)
    return found


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


@pytest.fixture
def driver(tmp_path):
    """A process that started the embedded Ray as a local search does, and is ready."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))  # this checkout
    process = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    tree: dict[int, int] = {}
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # the watchdog's record of the workers (every 0.5 s)
        tree = _tree(process.pid)
        yield process, tree
    finally:
        process.kill()
        process.wait()
        for pid, started in tree.items():  # what a failed test left
            stat = _stat(pid)
            if stat is not None and stat[1] == started:
                os.kill(pid, signal.SIGKILL)


def test_the_embedded_ray_listens_on_loopback_only(driver):
    process, tree = driver
    sockets = _sockets()
    listening = []
    for pid in tree:
        try:
            targets = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except OSError:  # a worker that ended meanwhile
            continue
        listening += [(_name(pid), *sockets[t[8:-1]]) for t in targets
                      if t.startswith("socket:[") and t[8:-1] in sockets]
    names = {name for name, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # the check saw Ray's servers at all
    open_ = [entry for entry in listening if not _is_loopback(entry[1])]
    assert open_ == [], (open_, listening)


def test_a_killed_search_leaves_no_ray_process_behind(driver):
    process, tree = driver
    assert len(tree) > 10, tree  # GCS, raylet, dashboard and its modules, agents, workers, ...
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + GONE_WITHIN_S
    while True:
        left = {pid: _name(pid) for pid, started in tree.items()
                if (stat := _stat(pid)) and stat[1] == started and stat[2] not in "ZX"}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert left == {}, f"alive {GONE_WITHIN_S} s after the driver's SIGKILL: {left}"
