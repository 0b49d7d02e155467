"""The API's OpenAPI document against the running system: the local stack serves it at
`GET /api/openapi.json` (the same document `syncctl openapi` prints, made from the route
table), and schemathesis drives every operation in it with generated requests, valid and
not: no answer may be a 5xx, an undocumented status, another content type, or a body that
breaks the document's schema.

Run by the test command. SYNCCTL names the syncctl binary (default: target/debug/syncctl);
SCHEMATHESIS_SECONDS bounds the generated run (default 90).
"""

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYNCCTL = os.environ.get("SYNCCTL", str(ROOT / "target" / "debug" / "syncctl"))
SCHEMATHESIS = str(ROOT / ".venv" / "bin" / "schemathesis")
SECONDS = os.environ.get("SCHEMATHESIS_SECONDS", "90")


class Stack:
    """`syncctl local` without the demo, on a free loopback port."""

    def __init__(self):
        self.proc = subprocess.Popen(
            [SYNCCTL, "local", "--no-demo", "--listen", "127.0.0.1:0"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        self.lines = queue.Queue()
        self.output = []
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _wait_until_up(self):
        deadline = time.monotonic() + 180
        self.api_url = None
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("the local stack did not start:\n" + "".join(self.output))
            if line is None:
                raise AssertionError("the local stack exited:\n" + "".join(self.output))
            self.output.append(line)
            match = re.match(r"\s*API:\s+(http://\S+)/api/sync/schedules", line)
            if match:
                self.api_url = match.group(1)
            if line.startswith("Due schedules are fired") and self.api_url:
                return

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def stack():
    running = Stack()
    yield running
    running.stop()


def token(tenant):
    return subprocess.run(
        [SYNCCTL, "dev-token", "--tenant", tenant], check=True, capture_output=True, text=True,
    ).stdout.strip()


def printed_document():
    out = subprocess.run([SYNCCTL, "openapi"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_the_api_serves_the_document_syncctl_prints_with_every_route_of_the_table(stack):
    request = urllib.request.Request(
        stack.api_url + "/api/openapi.json",
        headers={"authorization": f"Bearer {token('acme')}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        served = json.loads(response.read())
    assert served == printed_document()
    assert served["openapi"] == "3.1.0"
    routes = json.loads(subprocess.run(
        [SYNCCTL, "routes"], check=True, capture_output=True, text=True,
    ).stdout)
    for route in routes["api"]:
        assert route["method"].lower() in served["paths"].get(route["path"], {}), route
    for route in routes["gateway"]:
        if "{proxy+}" not in route["path"]:
            assert route["path"] in served["paths"], route


def test_generated_requests_to_every_operation_get_documented_answers_and_no_5xx(stack, tmp_path):
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(printed_document()))
    run = subprocess.run(
        [SCHEMATHESIS, "run", str(schema), "--url", stack.api_url,
         "-H", f"Authorization: Bearer {token('acme')}",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--phases", "examples,coverage,fuzzing", "--max-time", SECONDS, "-w", "2"],
        cwd=tmp_path, capture_output=True, text=True,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated, run.stdout[-3000:]
    assert int(generated.group(1)) >= 1000, "too few cases to say anything"
    assert generated.group(1) == generated.group(2)
