"""`sam local invoke` and `sam local start-api` against the local stack, offline.

Run by the test command when a Docker engine answers, after `infra/sam-local.sh build` (the
stand-in Lambda image and `sam build --config-env local`). Each function is invoked by the
SAM CLI in a container with its `events/` samples, exactly as the README tells users to, and
the answers are checked; what the functions did is checked through the local stack's API.

SYNCCTL names the syncctl binary (default: target/debug/syncctl). SAM_TIMES_FILE, when set,
receives each function's first (cold) and warm invoke times, measured through
`sam local start-lambda` with warm containers.
"""

import json
import os
import platform
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
SAM = str(ROOT / ".venv" / "bin" / "sam")
SYNCCTL = os.environ.get("SYNCCTL", str(ROOT / "target" / "debug" / "syncctl"))

# The ids the samples address (events/README.md).
STORE = "0b9e1a52-3c4d-4e5f-8a6b-7c8d9e0f1a2b"
SCHEDULED_STORE = "8d2f5b7a-1c3e-4f60-9a8b-2e4d6f8a0b1c"
WEBHOOKS_STORE = "3f6c2a1e-9b7d-4c55-8e21-0a4b6d9c7f10"

# What the functions are built for and run as: this machine's architecture.
ARCHITECTURE = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"

_check = subprocess.run(["bash", str(ROOT / "infra" / "sam-local.sh"), "check"],
                        capture_output=True, text=True)
pytestmark = pytest.mark.skipif(_check.returncode != 0, reason=f"sam local: {_check.stdout.strip()}")

FUNCTIONS = {
    "ScheduleApiFunction": "schedules-list.json",
    "ConnectionSetupFunction": "connections-quickbooks-authorize.json",
    "WebhookIntakeFunction": "webhook-woocommerce-ping.json",
    "WebhookCoalescerFunction": "webhook-coalescer-events.json",
    "SyncWorkerFunction": "sync-worker-jobs.json",
}


def sam_env():
    env = dict(os.environ)
    env["SAM_CLI_TELEMETRY"] = "0"
    # The functions get SAM's credentials; moto takes any.
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """`syncctl local` on Docker's bridge address, serving `sam local`."""

    def __init__(self, tmp):
        address = subprocess.run(
            ["bash", str(ROOT / "infra" / "sam-local.sh"), "address"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        self.env_file = tmp / "local-env.json"
        self.proc = subprocess.Popen(
            [SYNCCTL, "local", "--host", address, "--listen", f"{address}:0",
             "--sam-env-file", str(self.env_file), "--tick-seconds", "1",
             "--coalesce-seconds", "1"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.output = []
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise

    def _wait_until_up(self):
        deadline = time.monotonic() + 180
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
            if line.startswith("SAM env-vars:"):
                break
        self.vars = json.loads(self.env_file.read_text())["Parameters"]

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def env_file_with(self, tmp, name, overrides):
        """An --env-vars file with `overrides` for one function (e.g. a queue that is not
        there), for the failure paths."""
        path = tmp / name
        vars = dict(self.vars)
        path.write_text(json.dumps({"Parameters": vars, **overrides}))
        return path

    def api(self, method, path, tenant, body=None):
        token = subprocess.run(
            [SYNCCTL, "dev-token", "--tenant", tenant], check=True, capture_output=True,
            text=True,
        ).stdout.strip()
        request = urllib.request.Request(
            self.api_url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("sam"))
    yield s
    s.stop()


def invoke(stack, function, event, env_file=None):
    """`sam local invoke` as the README gives it; the function's answer as JSON."""
    result = subprocess.run(
        [SAM, "local", "invoke", function, "-e", str(EVENTS / event), "--config-env", "local",
         "--env-vars", str(env_file or stack.env_file),
         "--parameter-overrides", f"Architecture={ARCHITECTURE}"],
        cwd=ROOT, env=sam_env(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"{function} {event}:\n{result.stderr[-4000:]}"
    lines = [l for l in result.stdout.splitlines() if l.strip()]
    assert lines, f"{function} {event} answered nothing:\n{result.stderr[-4000:]}"
    return json.loads(lines[-1])


def http_answer(answer):
    """An API Gateway proxy answer: its status and its body (JSON where it is)."""
    body = answer.get("body") or ""
    if answer.get("isBase64Encoded"):
        import base64
        body = base64.b64decode(body).decode()
    try:
        body = json.loads(body)
    except ValueError:
        pass
    return answer["statusCode"], body


def failures(answer):
    return [f["itemIdentifier"] for f in answer["batchItemFailures"]]


def message_ids(event):
    return [r["messageId"] for r in json.loads((EVENTS / event).read_text())["Records"]]


def test_the_schedule_api_creates_lists_previews_and_answers_404_for_a_schedule_it_does_not_have(stack):
    status, created = http_answer(invoke(stack, "ScheduleApiFunction", "schedules-create.json"))
    assert status == 201, created
    assert created["message"] == "schedule created"
    assert created["schedule"]["credential_id"] == SCHEDULED_STORE
    assert created["schedule"]["schedule_expression"] == "cron(0/15 * * * ? *)"
    status, listed = http_answer(invoke(stack, "ScheduleApiFunction", "schedules-list.json"))
    assert status == 200, listed
    assert created["id"] in [s["id"] for s in listed]
    status, preview = http_answer(invoke(stack, "ScheduleApiFunction", "schedules-preview.json"))
    assert status == 200, preview
    assert preview["next_runs"]
    for sample in ["schedules-get.json", "schedules-update.json", "schedules-delete.json"]:
        status, body = http_answer(invoke(stack, "ScheduleApiFunction", sample))
        assert status == 404, (sample, body)
        assert body["error"]["code"] == "not_found", body
    status, body = http_answer(invoke(stack, "ScheduleApiFunction", "schedules-create-no-tenant.json"))
    assert status == 401, body
    # The schedule the container created is the stack's: its API lists it too.
    mine = stack.api("GET", "/api/sync/schedules", "tenant-demo")
    assert created["id"] in [s["id"] for s in mine]


def test_connection_setup_registers_and_removes_webhooks_and_starts_intuits_consent(stack):
    status, body = http_answer(invoke(stack, "ConnectionSetupFunction", "connections-webhooks-register.json"))
    assert status == 200, body
    assert body["webhook_url"].endswith(f"/webhooks/woocommerce/{WEBHOOKS_STORE}"), body
    changes = [s["change"] for s in body["subscriptions"]]
    assert changes and set(changes) == {"created"}, body
    status, body = http_answer(invoke(stack, "ConnectionSetupFunction", "connections-webhooks-remove.json"))
    assert status == 200, body
    assert {s["change"] for s in body["subscriptions"]} == {"removed"}, body
    status, body = http_answer(invoke(stack, "ConnectionSetupFunction", "connections-quickbooks-authorize.json"))
    assert status == 200, body
    assert body["authorize_url"].startswith(stack.vars["QBO_AUTHORIZE_URL"]), body
    answer = invoke(stack, "ConnectionSetupFunction", "oauth-quickbooks-callback.json")
    status, page = http_answer(answer)
    assert status == 400, page
    assert "<html" in page.lower()


def test_the_intake_queues_signed_deliveries_once_and_refuses_a_bad_signature(stack):
    status, body = http_answer(invoke(stack, "WebhookIntakeFunction", "webhook-woocommerce-order-updated.json"))
    assert (status, body["queued"]) == (200, 1), body
    # The same delivery again, in a new container: a duplicate, through the shared table.
    status, body = http_answer(invoke(stack, "WebhookIntakeFunction", "webhook-woocommerce-order-updated.json"))
    assert (status, body["queued"], body["duplicates"]) == (200, 0, 1), body
    status, body = http_answer(invoke(stack, "WebhookIntakeFunction", "webhook-woocommerce-bad-signature.json"))
    assert status == 401, body
    status, body = http_answer(invoke(stack, "WebhookIntakeFunction", "webhook-woocommerce-ping.json"))
    assert status == 200, body
    for sample in ["webhook-quickbooks-classic.json", "webhook-quickbooks-cloudevents.json",
                   "webhook-supabase-update.json"]:
        status, body = http_answer(invoke(stack, "WebhookIntakeFunction", sample))
        assert status == 200, (sample, body)
        assert body["queued"] >= 1, (sample, body)
    events = stack.api("GET", f"/api/connections/{STORE}/events", "acme")
    assert any(e["entity_id"] == "1042" for e in events["events"]), events


def test_the_coalescer_queues_the_sample_batch_and_hands_back_only_what_it_could_not_queue(stack, tmp_path):
    answer = invoke(stack, "WebhookCoalescerFunction", "webhook-coalescer-events.json")
    assert failures(answer) == [], answer
    # The sync queue is not there: the two events go back to SQS; the message that is not
    # an event is dropped, never retried.
    missing = stack.vars["SYNC_QUEUE_URL"] + "-missing"
    env = stack.env_file_with(tmp_path, "no-queue.json", {"WebhookCoalescerFunction": {"SYNC_QUEUE_URL": missing}})
    answer = invoke(stack, "WebhookCoalescerFunction", "webhook-coalescer-events.json", env)
    assert failures(answer) == message_ids("webhook-coalescer-events.json")[:2], answer


def full_product_runs(stack):
    runs = stack.api("GET", f"/api/sync/runs?connection_id={STORE}&limit=100", "acme")["runs"]
    return [r for r in runs if r["sync_mode"] == "full" and r["entity_type"] == "products"]


def test_the_worker_syncs_the_sample_jobs_and_hands_back_only_jobs_it_could_not_run(stack, tmp_path):
    # The sample flow's backfill (queued when the stack created the flow) holds the stream
    # while it runs; the sample jobs would wait for it.
    deadline = time.monotonic() + 120
    while any(r["status"] in ("queued", "running") for r in full_product_runs(stack)) or not full_product_runs(stack):
        assert time.monotonic() < deadline, full_product_runs(stack)
        time.sleep(1)
    before = {r["id"] for r in full_product_runs(stack)}
    answer = invoke(stack, "SyncWorkerFunction", "sync-worker-jobs.json")
    assert failures(answer) == [], answer
    new = [r for r in full_product_runs(stack) if r["id"] not in before]
    assert len(new) == 1, new
    assert new[0]["status"] == "succeeded", new[0]
    assert new[0]["counts"]["read"] > 0, new[0]
    # The table is not there: both jobs go back to SQS for a retry; the message that is not
    # a job is dropped.
    env = stack.env_file_with(tmp_path, "no-table.json", {"SyncWorkerFunction": {"TABLE_NAME": "missing-table"}})
    answer = invoke(stack, "SyncWorkerFunction", "sync-worker-jobs.json", env)
    assert failures(answer) == message_ids("sync-worker-jobs.json")[:2], answer


def wait_for_port(port, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "sam exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"nothing listens on {port}")


def start_sam(stack, command, port, *extra):
    return subprocess.Popen(
        [SAM, "local", command, "--config-env", "local", "--env-vars", str(stack.env_file),
         "--parameter-overrides", f"Architecture={ARCHITECTURE}", "--port", str(port), *extra],
        cwd=ROOT, env=sam_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_sam(proc):
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def test_start_api_serves_the_webhook_route_and_api_routes_get_no_claims_from_it(stack):
    port = free_port()
    proc = start_sam(stack, "start-api", port)
    try:
        wait_for_port(port, proc)
        sample = json.loads((EVENTS / "webhook-woocommerce-order-updated.json").read_text())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{sample['rawPath']}", method="POST",
            data=sample["body"].encode(), headers=sample["headers"],
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.loads(response.read())
            assert response.status == 200
        assert body["queued"] + body["duplicates"] == 1, body
        # SAM does not run the HTTP API's JWT authorizer: no claims reach the function, which
        # answers 401 (README, "Run a function the way Lambda does").
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sync/schedules", timeout=120)
        assert refused.value.code == 401
        assert json.loads(refused.value.read())["error"]["code"] == "unauthorized"
    finally:
        stop_sam(proc)


def test_each_function_answers_a_cold_and_a_warm_invoke_through_start_lambda(stack):
    import boto3
    from botocore.config import Config

    port = free_port()
    proc = start_sam(stack, "start-lambda", port, "--warm-containers", "LAZY")
    times = {}
    try:
        wait_for_port(port, proc)
        client = boto3.client(
            "lambda", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(read_timeout=300, retries={"max_attempts": 0}),
        )
        for function, event in FUNCTIONS.items():
            payload = (EVENTS / event).read_bytes()
            measured = []
            for _ in range(2):
                started = time.monotonic()
                answer = client.invoke(FunctionName=function, Payload=payload)
                measured.append(time.monotonic() - started)
                body = json.loads(answer["Payload"].read())
                assert "FunctionError" not in answer, (function, body)
                if "Records" in json.loads(payload):
                    assert body["batchItemFailures"] == [], (function, body)
                else:
                    assert body["statusCode"] == 200, (function, body)
            times[function] = measured
    finally:
        stop_sam(proc)
    lines = ["| function | first invoke (cold) | warm invoke |", "|---|---|---|"]
    lines += [f"| {f} | {t[0] * 1000:.0f} ms | {t[1] * 1000:.0f} ms |" for f, t in times.items()]
    report = "\n".join(lines) + "\n"
    if os.environ.get("SAM_TIMES_FILE"):
        Path(os.environ["SAM_TIMES_FILE"]).write_text(report)
    print(report)
