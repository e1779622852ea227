"""Ending the embedded Ray's processes when the search that started them dies (Linux).

Ray 2.60 starts its head processes (GCS, raylet, dashboard, log monitor, autoscaler monitor) with
``PR_SET_PDEATHSIG``, so a SIGKILLed driver takes them along at once. The raylet's own children are
not: the workers notice the lost raylet after a few seconds, and the dashboard and runtime-env agents
report the raylet's death to the GCS, which is gone too, and wait 60 s for it (measured: 64 s).

The watchdog is a small process the driver starts beside the Ray it embeds (``ray_cluster``). The driver
sends it the pids of the head processes it started; every ``POLL_S`` it records them and their
descendants (pid and start time, so a reused pid is never taken for one of them). When the driver is
gone (its pipe closes, or its pid now names another process) it sends SIGTERM to every recorded
process still alive, SIGKILL to those left after ``GRACE_S``, and exits. It only ever signals processes
that descended from a head process this driver started: a Ray cluster joined with ``--address`` has
no watchdog. Standard library only, run by path (``python -I``) so it imports nothing of the package.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

#: Seconds between two records of the Ray processes; a worker started in the last one before the
#: driver dies is not recorded and ends by itself a few seconds after the raylet.
POLL_S = 0.5
#: Seconds the recorded processes get to stop after SIGTERM before SIGKILL.
GRACE_S = 2.0

_PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, int] | None:
    """``(parent pid, start time in clock ticks)`` of a live process, else None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and ')'
    if fields[0] in ("Z", "X"):  # a zombie has ended; only its parent's wait is missing
        return None
    return int(fields[1]), int(fields[19])


def _alive(pid: int, started: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] == started


def _descendants(tracked: dict[int, int]) -> dict[int, int]:
    """Every live process below a live tracked one, as ``{pid: start time}``."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, int] = {}
    stack = [pid for pid, started in tracked.items() if _alive(pid, started)]
    while stack:
        for child, started in children.get(stack.pop(), ()):
            if child not in found:
                found[child] = started
                stack.append(child)
    return found


def _end(tracked: dict[int, int]) -> None:
    """SIGTERM every recorded process still alive, SIGKILL what remains after ``GRACE_S``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [pid for pid, started in tracked.items() if _alive(pid, started)]
        for pid in left:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + GRACE_S
        while sig == signal.SIGTERM and time.monotonic() < deadline and \
                any(_alive(pid, tracked[pid]) for pid in left):
            time.sleep(0.1)


def watch(driver: int) -> None:
    """Record the processes named on stdin and their descendants until ``driver`` is gone; end them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle; then its pipe closes
    driver_stat = _stat(driver)
    if driver_stat is None:
        return
    tracked: dict[int, int] = {}
    pending = b""
    stdin = sys.stdin.fileno()
    while True:
        if select.select([stdin], [], [], POLL_S)[0]:
            chunk = os.read(stdin, 4096)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for pid in map(int, filter(None, lines)):
                if (stat := _stat(pid)) is not None:
                    tracked[pid] = stat[1]
        if not _alive(driver, driver_stat[1]):
            break
        tracked.update(_descendants(tracked))
    tracked.update(_descendants(tracked))
    _end(tracked)


def start_watchdog() -> subprocess.Popen | None:
    """Start a watchdog for this process (None where there is no ``/proc``); write pids to its stdin."""
    if not (_PROC / "self" / "stat").exists():
        return None
    # Its own session: a Ctrl-C or a signal to the search's process group does not reach it.
    return subprocess.Popen([sys.executable, "-I", str(Path(__file__).resolve()), str(os.getpid())],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
