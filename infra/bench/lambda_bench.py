"""Functions measured the way Lambda runs them, on this machine: each one's process under a
stand-in Lambda Runtime API, its AWS calls through a counting proxy in front of the local
stack's moto.

    lambda_bench.py intake      our webhook intake against a Powertools handler, side by side
    lambda_bench.py functions   cold start, first invoke, memory and size of every function

Figures:
- init: process start to its first poll of the Runtime API (median of 5 cold starts);
- handler time: from the Runtime API handing an event over to the answer arriving;
- AWS calls per event, by operation, as the proxy saw them (every call is sequential);
- "at d ms per AWS call": handler time with the stand-in's own time taken out and d ms added
  per call: what the handler costs where every call is a d ms round trip (0 ms is a
  zero-latency stand-in);
- peak memory: the process's VmHWM after every invocation.

Needs a release build of the functions (target/release/<function>) and syncctl
(SYNCCTL, default target/debug/syncctl), which runs the local stack with the samples'
connections (`events/README.md`). Prints Markdown; `--out FILE` also writes it there.
"""

import argparse
import base64
import hashlib
import hmac
import html
import http.client
import http.server
import json
import os
import queue
import socket
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SYNCCTL = os.environ.get("SYNCCTL", str(ROOT / "target" / "debug" / "syncctl"))
RELEASE = ROOT / "target" / "release"
PYTHON = str(ROOT / ".venv" / "bin" / "python")

WOO_CONNECTION = "0b9e1a52-3c4d-4e5f-8a6b-7c8d9e0f1a2b"
QBO_CONNECTION = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
WOO_SECRET = "whsec_Sample&amp;Secret-0123456789"  # as typed; WooCommerce signs it decoded
QBO_VERIFIER = "verifier-token-0123456789abcdef"
REALM = "9130350000000001"
COLD_STARTS = 5
# Cold starts of each function in the table of every function (its spread is shown).
FUNCTION_COLD_STARTS = 10


def pct(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- the local stack -------------------------------------------------------------------------


class Stack:
    """`syncctl local` with the samples' connections; its functions' environment."""

    def __init__(self, tmp):
        env_file = tmp / "env.json"
        self.proc = subprocess.Popen(
            [SYNCCTL, "local", "--listen", "127.0.0.1:0", "--sam-env-file", str(env_file)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        deadline = time.monotonic() + 180
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            if line.startswith("SAM env-vars:"):
                break
            if time.monotonic() > deadline:
                break
        else:
            raise SystemExit("the local stack did not start:\n" + "".join(seen))
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.vars = json.loads(env_file.read_text())["Parameters"]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


class QuickHandler(http.server.BaseHTTPRequestHandler):
    """Keep-alive, and no Nagle: a small answer is not held back waiting for an ACK."""

    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass


# --- the counting proxy ----------------------------------------------------------------------


class Proxy:
    """Forwards AWS calls to moto; counts them by operation and adds up moto's time."""

    def __init__(self, upstream):
        self.upstream = upstream.replace("http://", "").rstrip("/")
        self.lock = threading.Lock()
        self.reset()
        proxy = self

        class Handler(QuickHandler):

            def do_POST(self):
                self.forward()

            def do_GET(self):
                self.forward()

            def forward(self):
                arrived = time.perf_counter()
                with proxy.lock:
                    proxy.in_flight += 1
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                target = self.headers.get("x-amz-target") or ""
                op = target.split(".")[-1] if target else self.command + " " + self.path
                service = target.split("_")[0].split(".")[0] if target else "?"
                service = {"AmazonSQS": "SQS", "TrentService": "KMS"}.get(service, service)
                conn = getattr(self, "_upstream", None)
                if conn is None:
                    conn = self._upstream = http.client.HTTPConnection(proxy.upstream, timeout=30)
                    conn.connect()
                    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["host"] = proxy.upstream
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                    status, out_headers = r.status, r.getheaders()
                except (OSError, http.client.HTTPException):
                    self._upstream = None
                    status, data, out_headers = 502, b"", []
                self.send_response(status)
                for k, v in out_headers:
                    if k.lower() not in ("transfer-encoding", "connection", "content-length",
                                         "server", "date"):
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                spent = time.perf_counter() - arrived
                with proxy.lock:
                    key = f"{service}.{op}"
                    proxy.calls[key] = proxy.calls.get(key, 0) + 1
                    proxy.spent += spent
                    proxy.in_flight -= 1

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self):
        with self.lock:
            self.calls, self.spent, self.in_flight = {}, 0.0, 0

    def take(self):
        """The calls and time since the last take, once no call is still being answered
        (a handler can have its answer before the proxy has finished counting)."""
        deadline = time.monotonic() + 5
        while True:
            with self.lock:
                if self.in_flight == 0 or time.monotonic() > deadline:
                    out = (dict(self.calls), self.spent)
                    self.calls, self.spent = {}, 0.0
                    return out
            time.sleep(0.0002)


# --- the stand-in Runtime API ----------------------------------------------------------------


class RuntimeApi:
    """Lambda's Runtime API for one function process: hands over events one at a time and
    times each from handing over to the answer."""

    def __init__(self):
        self.events = queue.Queue()
        self.answers = queue.Queue()
        self.first_poll = queue.Queue()
        self.polled = False
        self.handed = {}
        api = self

        class Handler(QuickHandler):

            def do_GET(self):
                if not self.path.endswith("/invocation/next"):
                    self.send_error(404)
                    return
                if not api.polled:
                    api.polled = True
                    api.first_poll.put(time.perf_counter())
                while True:
                    try:
                        event = api.events.get(timeout=0.5)
                        break
                    except queue.Empty:
                        if api.stopped:
                            return
                request_id = str(uuid.uuid4())
                data = json.dumps(event).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                api.handed[request_id] = time.perf_counter()
                self.wfile.write(data)
                self.wfile.flush()

            def do_POST(self):
                arrived = time.perf_counter()
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                m = re.search(r"/invocation/([^/]+)/(response|error)$", self.path)
                if m:
                    started = api.handed.pop(m.group(1), arrived)
                    api.answers.put((arrived - started, m.group(2), body))
                elif self.path.endswith("/init/error"):
                    api.answers.put((0.0, "init-error", body))

        self.stopped = False
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.server.server_address[1]}"

    def invoke(self, event):
        self.events.put(event)
        seconds, kind, body = self.answers.get(timeout=60)
        if kind != "response":
            raise RuntimeError(f"the function answered {kind}: {body[:500]!r}")
        return seconds, json.loads(body or b"null")

    def stop(self):
        self.stopped = True
        self.server.shutdown()


class Process:
    """A function's process under its own Runtime API."""

    def __init__(self, command, env):
        self.api = RuntimeApi()
        full = dict(env)
        full.update({
            "AWS_LAMBDA_RUNTIME_API": self.api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench",
            "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_REGION": env.get("AWS_REGION", "us-east-1"),
            "AWS_DEFAULT_REGION": env.get("AWS_REGION", "us-east-1"),
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true", "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "warn"), "POWERTOOLS_LOG_LEVEL": "WARNING",
        })
        self.started = time.perf_counter()
        # BENCH_RUST_LOG shows a function's own log (on this process's stderr).
        quiet = None if "BENCH_RUST_LOG" in os.environ else subprocess.DEVNULL
        self.proc = subprocess.Popen(command, env=full, stdout=quiet, stderr=quiet)
        self.init = self.api.first_poll.get(timeout=60) - self.started

    def peak_rss_mb(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.api.stop()


# --- the deliveries --------------------------------------------------------------------------


def sign(key, body):
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def gateway_event(path, headers, body):
    return {
        "version": "2.0", "routeKey": "ANY /webhooks/{platform}/{connection_id}",
        "rawPath": path, "rawQueryString": "", "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.example.com",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.7", "userAgent": headers.get("user-agent", "")},
            "requestId": str(uuid.uuid4()), "routeKey": "ANY /webhooks/{platform}/{connection_id}",
            "stage": "$default", "timeEpoch": int(time.time() * 1000)},
        "body": body.decode(), "isBase64Encoded": False,
    }


def delivery(n):
    """Delivery `n`: WooCommerce for even n, QuickBooks for odd; a new change each."""
    if n % 2 == 0:
        body = json.dumps({
            "id": 100000 + n, "parent_id": 0, "status": "processing", "currency": "CAD",
            "date_created_gmt": "2026-11-24T12:10:02", "date_modified_gmt": "2026-11-24T12:12:44",
            "total": "42.50", "customer_id": 7,
            "line_items": [{"id": 311, "name": "Mug", "product_id": 88, "quantity": 2, "total": "38.00",
                            "sku": "MUG-1", "price": 19}]}, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "user-agent": "WooCommerce/10.3.0 Hookshot",
                   "x-wc-webhook-source": "https://shop.example.com/", "x-wc-webhook-topic": "order.updated",
                   "x-wc-webhook-resource": "order", "x-wc-webhook-event": "updated",
                   "x-wc-webhook-signature": sign(html.unescape(WOO_SECRET), body),
                   "x-wc-webhook-id": "17", "x-wc-webhook-delivery-id": uuid.uuid4().hex}
        return gateway_event(f"/webhooks/woocommerce/{WOO_CONNECTION}", headers, body)
    body = json.dumps({"eventNotifications": [{"realmId": REALM, "dataChangeEvent": {"entities": [
        {"name": "Customer", "id": str(500000 + n), "operation": "Update",
         "lastUpdated": "2026-11-24T12:12:45.657Z"}]}}]}, separators=(",", ":")).encode()
    headers = {"content-type": "application/json", "user-agent": "intuit-webhooks",
               "intuit-signature": sign(QBO_VERIFIER, body)}
    return gateway_event(f"/webhooks/quickbooks/{QBO_CONNECTION}", headers, body)


# --- the intake benchmark --------------------------------------------------------------------


def powertools_env(stack, proxy):
    import boto3
    kw = dict(endpoint_url=stack.vars["AWS_ENDPOINT_URL"], region_name="us-east-1",
              aws_access_key_id="testing", aws_secret_access_key="testing")
    table = f"bench-idempotency-{uuid.uuid4().hex[:8]}"
    boto3.client("dynamodb", **kw).create_table(
        TableName=table, KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    queue_url = boto3.client("sqs", **kw).create_queue(
        QueueName=f"bench-powertools-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return {
        "AWS_ENDPOINT_URL": proxy.url, "IDEMPOTENCY_TABLE": table, "QUEUE_URL": queue_url,
        "WOO_WEBHOOK_SECRET": WOO_SECRET, "QBO_VERIFIER_TOKEN": QBO_VERIFIER, "QBO_REALM": REALM,
        "_HANDLER": "powertools_intake.handler", "PATH": os.environ.get("PATH", ""),
    }


def check_answer(name, answer, duplicate):
    """Both handlers must have done the job: 200, and (ours) queued or seen as a duplicate."""
    if not isinstance(answer, dict) or answer.get("statusCode") != 200:
        raise SystemExit(f"{name} refused a delivery: {answer}")
    body = json.loads(answer.get("body") or "{}")
    if name == "ours":
        want = "duplicates" if duplicate else "queued"
        if body.get(want) != 1:
            raise SystemExit(f"ours answered {body} to a {'duplicate' if duplicate else 'new'} event")
    elif body.get("changes") != 1:
        raise SystemExit(f"{name} answered {body}: it read no change")


# What the timed deliveries are: new events; the same again to the container that handled
# them; the same again to another warm container.
KINDS = ("new", "duplicate", "duplicate elsewhere")

# The deliveries both handlers are timed on; the proxy that counts their calls.
replay = []
PROXY = None


def intake(args):
    import tempfile
    global replay
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    stack = Stack(tmp)
    try:
        global PROXY
        proxy = PROXY = Proxy(stack.vars["AWS_ENDPOINT_URL"])
        ours_env = dict(stack.vars)
        ours_env["AWS_ENDPOINT_URL"] = proxy.url
        binary = str(RELEASE / "webhook-intake")
        theirs_env = powertools_env(stack, proxy)
        results = {}
        # Both see the same deliveries: new ones, then the very same again.
        replay = [delivery(10_000_000 + i) for i in range(args.events)]
        for name, command, env, first in (
            ("ours", [binary], ours_env, 0),
            ("powertools", [PYTHON, str(HERE / "runtime.py")], theirs_env, 0),
        ):
            results[name] = measure_intake(name, command, env, args.events, first)
    finally:
        stack.stop()
    return report_intake(results, args.events), intake_figures(results)


def measure_intake(name, command, env, n, first_id):
    """Cold starts (each answering one new event), 20 warm-up events, then the first `n` of
    `replay` as new events and the same again as duplicates, one at a time."""
    inits, firsts = [], []
    for i in range(COLD_STARTS):
        p = Process(command, env)
        try:
            PROXY.take()
            seconds, answer = p.api.invoke(delivery(first_id + 20_000 + i))
            calls, spent = PROXY.take()
            check_answer(name, answer, False)
            inits.append(p.init)
            firsts.append((seconds, spent, calls))
        finally:
            p.stop()
    rows = {kind: [] for kind in KINDS}

    def replay_as(p, kind):
        for event in replay[:n]:
            PROXY.take()
            seconds, answer = p.api.invoke(event)
            calls, spent = PROXY.take()
            check_answer(name, answer, kind != "new")
            rows[kind].append((seconds, spent, calls))

    p = Process(command, env)
    try:
        for i in range(20):
            p.api.invoke(delivery(first_id + 30_000 + i))
        replay_as(p, "new")
        replay_as(p, "duplicate")
        rss = p.peak_rss_mb()
    finally:
        p.stop()
    # The same duplicates reaching another warm container, which has not seen them, once
    # the local stack's coalescer has put the events in jobs (its window is 5 s).
    time.sleep(8)
    p = Process(command, env)
    try:
        for i in range(20):
            p.api.invoke(delivery(first_id + 40_000 + i))
        replay_as(p, "duplicate elsewhere")
    finally:
        p.stop()
    return {"init": inits, "first": firsts, "rows": rows, "rss": rss}


def fmt_ms(seconds):
    return f"{seconds * 1000:.2f}"


def calls_text(rows):
    """The mean calls per event, in all and by operation."""
    counts = {}
    for _, _, calls in rows:
        for k, v in calls.items():
            counts[k] = counts.get(k, 0) + v
    n = max(1, len(rows))
    total = sum(counts.values()) / n
    parts = ", ".join(f"{k.split('.', 1)[1]} ×{v / n:.3g}" for k, v in sorted(counts.items()))
    return total, parts


def adjusted(rows, delay):
    return [max(0.0, seconds - spent) + delay * sum(calls.values()) for seconds, spent, calls in rows]


def intake_figures(results):
    """The figures the cost model reads (infra/bench/report.py)."""
    out = {}
    for name, r in results.items():
        out[name] = {
            "init_ms": statistics.median(r["init"]) * 1000,
            "rss_mb": r["rss"],
        }
        for kind in KINDS:
            total, _ = calls_text(r["rows"][kind])
            ops = {}
            for _, _, calls in r["rows"][kind]:
                for k, v in calls.items():
                    ops[k] = ops.get(k, 0) + v / len(r["rows"][kind])
            out[name][kind] = {
                "calls": total, "ops": ops,
                "p50_ms_at_0": pct(adjusted(r["rows"][kind], 0.0), 50) * 1000,
                "p50_ms_at_5": pct(adjusted(r["rows"][kind], 0.005), 50) * 1000,
                "p99_ms_at_5": pct(adjusted(r["rows"][kind], 0.005), 99) * 1000,
            }
    return out


def report_intake(results, n):
    ours, theirs = results["ours"], results["powertools"]
    lines = [
        f"Each handler: {COLD_STARTS} cold starts, 20 warm-up events, then {n} new events "
        f"(WooCommerce and QuickBooks alternately) and the same {n} again (duplicates), one at a time; "
        f"then the same {n} to another warm container (20 warm-up events) once the events are in jobs.",
        "",
        "| | ours | Powertools | ours is |",
        "|---|---|---|---|",
    ]

    def ratio(a, b, lower_is_better=True):
        if a == 0 or b == 0:
            return "—"
        r = b / a if lower_is_better else a / b
        if not lower_is_better:
            return f"×{r:.1f}"
        return f"×{r:.1f} faster" if r >= 1 else f"×{1 / r:.1f} slower"

    init_o, init_t = statistics.median(ours["init"]), statistics.median(theirs["init"])
    lines.append(f"| init (median of {COLD_STARTS}) ms | {fmt_ms(init_o)} | {fmt_ms(init_t)} | {ratio(init_o, init_t)} |")
    for delay in (0.0, 0.005):
        f_o = statistics.median(adjusted(ours["first"], delay))
        f_t = statistics.median(adjusted(theirs["first"], delay))
        lines.append(f"| first invoke at {delay * 1000:.0f} ms per AWS call (median) ms | {fmt_ms(f_o)} | {fmt_ms(f_t)} | {ratio(f_o, f_t)} |")
    c_o, p_o = calls_text(ours["first"])
    c_t, p_t = calls_text(theirs["first"])
    lines.append(f"| AWS calls in the first invoke | {c_o:.2g} ({p_o}) | {c_t:.2g} ({p_t}) | |")
    lines.append(f"| peak memory MB | {ours['rss']:.1f} | {theirs['rss']:.1f} | ×{theirs['rss'] / ours['rss']:.1f} less |")
    for kind in KINDS:
        to, po = calls_text(ours["rows"][kind])
        tt, pt = calls_text(theirs["rows"][kind])
        verdict = "fewer" if to < tt else ("as many" if to == tt else "more")
        lines.append(f"| AWS calls per {kind} event | {to:.2g} ({po}) | {tt:.2g} ({pt}) | {verdict} |")
    for kind in KINDS:
        raw_o = [r[0] for r in ours["rows"][kind]]
        raw_t = [r[0] for r in theirs["rows"][kind]]
        lines.append(f"| {kind}: handler time against moto p50 / p99 ms | {fmt_ms(pct(raw_o, 50))} / {fmt_ms(pct(raw_o, 99))} "
                     f"| {fmt_ms(pct(raw_t, 50))} / {fmt_ms(pct(raw_t, 99))} | {ratio(pct(raw_o, 50), pct(raw_t, 50))} (p50) |")
        for delay in (0.0, 0.005):
            a_o, a_t = adjusted(ours["rows"][kind], delay), adjusted(theirs["rows"][kind], delay)
            lines.append(f"| {kind}: at {delay * 1000:.0f} ms per AWS call p50 / p99 ms | {fmt_ms(pct(a_o, 50))} / {fmt_ms(pct(a_o, 99))} "
                         f"| {fmt_ms(pct(a_t, 50))} / {fmt_ms(pct(a_t, 99))} | {ratio(pct(a_o, 50), pct(a_t, 50))} (p50) |")
    return "\n".join(lines)


# --- every function --------------------------------------------------------------------------

FUNCTIONS = [
    ("schedule-api", "schedules-list.json"),
    ("webhook-intake", "webhook-woocommerce-ping.json"),
    ("webhook-coalescer", "webhook-coalescer-events.json"),
    ("connection-setup", "connections-quickbooks-authorize.json"),
    ("sync-worker", None),
    ("sweeper", None),
]


def zip_size(binary):
    import io
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.write(binary, "bootstrap")
    return len(buffer.getvalue())


def functions(args):
    import tempfile
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    stack = Stack(tmp)
    figures = {}
    lines = [
        f"| function | init ms, median (min–max) of {FUNCTION_COLD_STARTS} | first invoke ms, median (min–max) | warm invoke p50 / p99 ms of 200 | peak memory MB after 200 | binary MB | zip MB |",
        "|---|---|---|---|---|---|---|",
    ]
    try:
        env = dict(stack.vars)
        for name, sample in FUNCTIONS:
            binary = RELEASE / name
            inits, firsts = [], []
            event = json.loads((ROOT / "events" / sample).read_text()) if sample else None
            for _ in range(FUNCTION_COLD_STARTS):
                p = Process([str(binary)], env)
                try:
                    inits.append(p.init)
                    if event is not None:
                        firsts.append(p.api.invoke(event)[0])
                finally:
                    p.stop()
            warm, rss = [], float("nan")
            if event is not None:
                p = Process([str(binary)], env)
                try:
                    for _ in range(200):
                        warm.append(p.api.invoke(event)[0])
                    rss = p.peak_rss_mb()
                finally:
                    p.stop()
            size = binary.stat().st_size
            rss_text = f"{rss:.1f}" if warm else "—"
            figures[name] = {"init_ms": statistics.median(inits) * 1000,
                             "init_min_ms": min(inits) * 1000, "init_max_ms": max(inits) * 1000,
                             "warm_p50_ms": pct(warm, 50) * 1000 if warm else None,
                             "warm_p99_ms": pct(warm, 99) * 1000 if warm else None,
                             "rss_mb": rss, "binary_mb": size / 1e6, "zip_mb": zip_size(binary) / 1e6}

            def spread(xs):
                return f"{fmt_ms(statistics.median(xs))} ({fmt_ms(min(xs))}–{fmt_ms(max(xs))})"

            lines.append(
                f"| {name} | {spread(inits)} | "
                f"{spread(firsts) if firsts else '—'} | "
                f"{fmt_ms(pct(warm, 50)) + ' / ' + fmt_ms(pct(warm, 99)) if warm else '—'} | "
                f"{rss_text} | {size / 1e6:.2f} | {zip_size(binary) / 1e6:.2f} |")
    finally:
        stack.stop()
    return "\n".join(lines), figures


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["intake", "functions"])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--out")
    args = parser.parse_args()
    text, figures = intake(args) if args.what == "intake" else functions(args)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
