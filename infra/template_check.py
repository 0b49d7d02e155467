"""Checks template.yaml against what the code says, so the two cannot drift apart:

- its HTTP API routes are the route table's (shared/api/src/routes.rs), no more and no fewer:
  each `HttpApi` event of a function is a gateway route with that method, path and function,
  guarded by the JWT authorizer exactly where the table says so;
- each queue-fed function's `BatchSize` and `Timeout` are its crate's `BATCH_SIZE` and
  `TIMEOUT` (which the local stack's event sources use too), its queue's visibility
  timeout is six times the timeout (AWS's advice for SQS event sources), and its queue's
  `maxReceiveCount` is the code's `MAX_RECEIVES` (a run alerts on its last receive);
- every alarm on the service's own metrics names a metric its function's metrics line
  carries (by the `Function` dimension), and the sweeper's schedule is the code's `RATE`.

What the code says is read from `syncctl routes` (its JSON): the same table the API function
dispatches by and the local gateway routes by.

    python infra/template_check.py [--syncctl PATH] [--self-test]

Run by the test command; `--self-test` shows the check failing on a template whose route was
dropped, added, moved to another function or left unguarded, and on a batch size or a
queue's receive count changed.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from iam_check import ROOT, load_template  # noqa: E402


def code_facts(syncctl: str) -> dict:
    answer = subprocess.run([syncctl, "routes"], check=True, capture_output=True, text=True)
    return json.loads(answer.stdout)


def table(facts: dict) -> list[tuple[str, str, str, bool]]:
    return sorted((r["method"], r["path"], r["function"], r["jwt"]) for r in facts["gateway"])


def queue_differences(template: dict, facts: dict) -> list[str]:
    resources = template["Resources"]
    default_timeout = template.get("Globals", {}).get("Function", {}).get("Timeout")
    problems = []
    for queue in facts["queues"]:
        name = queue["function"]
        props = resources[name]["Properties"]
        timeout = props.get("Timeout", default_timeout)
        if timeout != queue["timeout_seconds"]:
            problems.append(f"{name}: Timeout is {timeout}, the code says {queue['timeout_seconds']}")
        sources = [e["Properties"] for e in (props.get("Events") or {}).values() if e.get("Type") == "SQS"]
        if len(sources) != 1:
            problems.append(f"{name}: {len(sources)} SQS event sources, the code has one")
            continue
        if sources[0].get("BatchSize") != queue["batch_size"]:
            problems.append(f"{name}: BatchSize is {sources[0].get('BatchSize')}, the code says {queue['batch_size']}")
        queue_ref = sources[0].get("Queue")
        queue_id = queue_ref[0] if isinstance(queue_ref, list) else str(queue_ref).split(".")[0]
        visibility = resources.get(queue_id, {}).get("Properties", {}).get("VisibilityTimeout")
        if visibility != 6 * queue["timeout_seconds"]:
            problems.append(f"{name}: its queue {queue_id} has VisibilityTimeout {visibility}, not six times {queue['timeout_seconds']}")
        redrive = resources.get(queue_id, {}).get("Properties", {}).get("RedrivePolicy", {})
        if redrive.get("maxReceiveCount") != queue["max_receives"]:
            problems.append(f"{name}: its queue {queue_id} has maxReceiveCount {redrive.get('maxReceiveCount')}, the code says {queue['max_receives']}")
    return problems


def alarm_differences(template: dict, facts: dict) -> list[str]:
    """Every alarm on the service's own metrics names a metric its function prints, and the
    sweeper runs at the code's rate."""
    problems = []
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        if "SyncService" not in str(props.get("Namespace", "")):
            continue
        function = next((d.get("Value") for d in props.get("Dimensions", []) if d.get("Name") == "Function"), None)
        printed = facts["metrics"].get(function)
        if printed is None:
            problems.append(f"{name}: no function prints metrics as Function={function}")
        elif props.get("MetricName") not in printed:
            problems.append(f"{name}: {function} prints no metric {props.get('MetricName')} (it prints {', '.join(printed)})")
    sweeper = facts["sweeper"]
    events = template["Resources"][sweeper["function"]]["Properties"].get("Events") or {}
    rates = [e["Properties"].get("ScheduleExpression", "") for e in events.values() if e.get("Type") == "ScheduleV2"]
    want = sweeper["rate_seconds"]
    seconds = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600}
    for rate in rates:
        parts = rate.removeprefix("rate(").removesuffix(")").split()
        got = int(parts[0]) * seconds.get(parts[1], 0) if len(parts) == 2 and parts[0].isdigit() else None
        if got != want:
            problems.append(f"{sweeper['function']}: {rate} is not the code's rate of {want} s")
    if len(rates) != 1:
        problems.append(f"{sweeper['function']}: {len(rates)} schedules, the code has one")
    return problems


def template_routes(template: dict) -> list[tuple[str, str, str, bool]]:
    api = template["Resources"]["HttpApi"]["Properties"]
    default_jwt = bool(api.get("Auth", {}).get("DefaultAuthorizer"))
    out = []
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event in (resource["Properties"].get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            props = event["Properties"]
            authorizer = props.get("Auth", {}).get("Authorizer")
            jwt = default_jwt if authorizer is None else authorizer != "NONE"
            method = str(props["Method"]).upper()
            out.append((method, props["Path"], logical_id, jwt))
    return sorted(out)


def differences(template: dict, facts: dict) -> list[str]:
    expected = table(facts)
    found = template_routes(template)
    problems = [f"template.yaml lacks the route {r}" for r in expected if r not in found]
    problems += [f"template.yaml has a route the table does not: {r}" for r in found if r not in expected]
    return problems + queue_differences(template, facts) + alarm_differences(template, facts)


def self_test(expected: dict) -> int:
    """The check must fail when the template drops, adds, moves or unguards a route,
    changes a batch size or receive count, names a metric no function prints, or changes the
    sweeper's rate."""
    template = load_template()
    caught = []
    intake = template["Resources"]["WebhookIntakeFunction"]["Properties"]["Events"]
    api = template["Resources"]["ScheduleApiFunction"]["Properties"]["Events"]
    name, event = next((n, e) for n, e in intake.items() if e.get("Type") == "HttpApi")

    dropped = copy.deepcopy(template)
    del dropped["Resources"]["WebhookIntakeFunction"]["Properties"]["Events"][name]
    caught.append(("dropped", bool(differences(dropped, expected))))

    added = copy.deepcopy(template)
    extra = copy.deepcopy(next(e for e in api.values() if e.get("Type") == "HttpApi"))
    extra["Properties"]["Path"] = "/api/extra"
    added["Resources"]["ScheduleApiFunction"]["Properties"]["Events"]["Extra"] = extra
    caught.append(("added", bool(differences(added, expected))))

    moved = copy.deepcopy(template)
    del moved["Resources"]["WebhookIntakeFunction"]["Properties"]["Events"][name]
    moved["Resources"]["ScheduleApiFunction"]["Properties"]["Events"][name] = copy.deepcopy(event)
    caught.append(("moved", bool(differences(moved, expected))))

    unguarded = copy.deepcopy(template)
    api_name = next(n for n, e in api.items() if e.get("Type") == "HttpApi")
    props = unguarded["Resources"]["ScheduleApiFunction"]["Properties"]["Events"][api_name]["Properties"]
    props["Auth"] = {"Authorizer": "NONE"}
    caught.append(("unguarded", bool(differences(unguarded, expected))))

    batch = copy.deepcopy(template)
    jobs = batch["Resources"]["SyncWorkerFunction"]["Properties"]["Events"]
    next(e for e in jobs.values() if e.get("Type") == "SQS")["Properties"]["BatchSize"] = 10
    caught.append(("batch size", bool(differences(batch, expected))))

    receives = copy.deepcopy(template)
    receives["Resources"]["SyncQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"] = 3
    caught.append(("receive count", bool(differences(receives, expected))))

    alarm = copy.deepcopy(template)
    alarm["Resources"]["FailedRunsAlarm"]["Properties"]["MetricName"] = "RunsFailedForGood"
    caught.append(("alarm metric", bool(differences(alarm, expected))))

    rate = copy.deepcopy(template)
    sweep = rate["Resources"]["SweeperFunction"]["Properties"]["Events"]
    next(e for e in sweep.values() if e.get("Type") == "ScheduleV2")["Properties"]["ScheduleExpression"] = "rate(10 minutes)"
    caught.append(("sweeper rate", bool(differences(rate, expected))))

    print("template self-test: " + ", ".join(f"{what} {'caught' if ok else 'NOT caught'}" for what, ok in caught))
    return 0 if all(ok for _, ok in caught) else 1


def main() -> int:
    syncctl = os.environ.get("SYNCCTL", str(ROOT / "target" / "debug" / "syncctl"))
    if "--syncctl" in sys.argv:
        syncctl = sys.argv[sys.argv.index("--syncctl") + 1]
    expected = code_facts(syncctl)
    if "--self-test" in sys.argv:
        return self_test(expected)
    problems = differences(load_template(), expected)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"template: the route table's {len(expected['gateway'])} gateway routes and no others; "
          f"{len(expected['queues'])} queue-fed functions' batch sizes and timeouts as the code says; "
          f"alarms on metrics the functions print; the sweeper at the code's rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
