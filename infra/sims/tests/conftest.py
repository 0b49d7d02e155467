"""The simulators, started once for the test session with `syncctl sims` (built by the test
command's `cargo test`; `SYNCCTL` names another binary), and stopped with SIGTERM."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def sims():
    exe = os.environ.get("SYNCCTL", str(ROOT / "target" / "debug" / "syncctl"))
    proc = subprocess.Popen([exe, "sims"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line, "syncctl sims printed nothing"
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


