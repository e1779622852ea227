"""The watchdog ends what descends from the pids it was given, once its driver is gone, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")

REPO = Path(__file__).resolve().parents[2]
# A stand-in for a driver: a "head" (a shell with a child) it hands to its watchdog, and a child
# of its own it does not hand over.
DRIVER = """
import subprocess, time
from fhn_automl.search.ray_watchdog import start_watchdog
dog = start_watchdog()
head = subprocess.Popen(["sh", "-c", "sleep 300 & wait"])
kept = subprocess.Popen(["sleep", "300"])
dog.stdin.write(f"{head.pid}\\n".encode()); dog.stdin.flush()
print(dog.pid, head.pid, kept.pid, flush=True)
time.sleep(300)
"""


def _running(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text[text.rindex(")") + 2] not in "ZX"


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_killed_driver_takes_what_it_handed_over_and_nothing_else(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE)
    dog, head, kept = map(int, driver.stdout.readline().split())
    try:
        deadline = time.monotonic() + 10
        while not _children(head) and time.monotonic() < deadline:
            time.sleep(0.1)
        grandchild = _children(head)[0]
        time.sleep(1.0)  # the watchdog records descendants every 0.5 s
        driver.kill()
        driver.wait()
        deadline = time.monotonic() + 10
        while any(map(_running, (dog, head, grandchild))) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(map(_running, (dog, head, grandchild)))
        assert _running(kept)
    finally:
        for pid in (kept, head, dog):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
