#!/usr/bin/env python3
"""Checks, per Lambda function, that its IAM policy in template.yaml grants exactly the AWS
actions its code can call: no action missing (it would fail only once deployed, since moto does
not enforce IAM) and none granted that no code of the function calls.

How a function's actions are found, from the source alone:
1. the function's crate (`Metadata.BuildProperties.Binary` = `functions/<binary>`) calls
   `sync_aws::wiring::<name>`;
2. that wiring function builds adapters (`crate::<Adapter>::new`), possibly through other
   wiring functions;
3. each adapter's file in `shared/aws/src` makes SDK calls (`client.<operation>()`), directly
   or through the shared record helpers of `table.rs` (`Records`, and its free helpers such
   as `batch_write` and `insert_beside`, counted for the files that call them); a DynamoDB transaction
   needs the item actions it is built from (`Put`, `Update`, `Delete`, `ConditionCheck`).

An adapter is counted whole, so a function must hold only adapters whose every call it may
make: where it would use only part of one, the adapter is split by capability (its own file),
never excused. EXCEPTIONS lists only what AWS needs on a function's behalf, with the reason;
an exception for a capability the code holds but never uses is refused, and one that no longer
matches a difference is itself an error, so the list cannot go stale.

Run by the test command; `--self-test` shows the check failing on a policy that lacks an action
and on one that grants an extra action.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
AWS_SRC = ROOT / "shared" / "aws" / "src"

# (function logical id, action): why the function's policy differs from its adapters:
# "external" = needed by AWS on the function's behalf, not by an SDK call in our code.
EXCEPTIONS: dict[tuple[str, str], str] = {
    # The API and worker reach EventBridge Scheduler with the scheduler's role, which they
    # hand over (iam:PassRole); reading schedules back is only the repair's (the sweeper,
    # and syncctl repair).
    ("ScheduleApiFunction", "iam:PassRole"): "external: Scheduler assumes the role we name",
    ("SyncWorkerFunction", "iam:PassRole"): "external: Scheduler assumes the role we name",
    # The sweeper's repair recreates triggers: it hands EventBridge its role as the API does.
    ("SweeperFunction", "iam:PassRole"): "external: Scheduler assumes the role we name",
    # SQS event sources: Lambda's poller receives and deletes with the function's role.
    ("WebhookCoalescerFunction", "sqs:ReceiveMessage"): "external: the event source mapping",
    ("WebhookCoalescerFunction", "sqs:DeleteMessage"): "external: the event source mapping",
    ("WebhookCoalescerFunction", "sqs:GetQueueAttributes"): "external: the event source mapping",
    ("WebhookCoalescerFunction", "sqs:ChangeMessageVisibility"): "external: the event source mapping",
    ("WebhookCoalescerFunction", "sqs:DeleteMessageBatch"): "external: the event source mapping",
    ("WebhookCoalescerFunction", "sqs:ChangeMessageVisibilityBatch"): "external: the event source mapping",
    ("SyncWorkerFunction", "sqs:ReceiveMessage"): "external: the event source mapping",
    ("SyncWorkerFunction", "sqs:DeleteMessage"): "external: the event source mapping",
    ("SyncWorkerFunction", "sqs:GetQueueAttributes"): "external: the event source mapping",
    ("SyncWorkerFunction", "sqs:ChangeMessageVisibility"): "external: the event source mapping",
    ("SyncWorkerFunction", "sqs:DeleteMessageBatch"): "external: the event source mapping",
    ("SyncWorkerFunction", "sqs:ChangeMessageVisibilityBatch"): "external: the event source mapping",
}

# Calls that IAM authorises as another action: SQS checks a batch send against
# sqs:SendMessage (there is no sqs:SendMessageBatch permission to grant).
AUTHORISED_AS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
}

SERVICE_OF_CRATE = {
    "aws_sdk_dynamodb": "dynamodb",
    "aws_sdk_sqs": "sqs",
    "aws_sdk_kms": "kms",
    "aws_sdk_scheduler": "scheduler",
    "aws_sdk_sns": "sns",
}

TRANSACTION_PARTS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}

# SAM policy templates used in template.yaml, expanded as SAM documents them.
SAM_POLICY_TEMPLATES = {
    "SQSPollerPolicy": [
        "sqs:ChangeMessageVisibility",
        "sqs:ChangeMessageVisibilityBatch",
        "sqs:DeleteMessage",
        "sqs:DeleteMessageBatch",
        "sqs:GetQueueAttributes",
        "sqs:ReceiveMessage",
    ],
}


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !GetAtt, !Sub …) read as plain data."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


CfnLoader.add_multi_constructor("!", _any_tag)


def camel(operation: str) -> str:
    return "".join(part.capitalize() for part in operation.split("_"))


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def sdk_calls(text: str) -> set[str]:
    """`client.<op>()` calls, also split over lines (`self.client\n    .put_item()`)."""
    flat = re.sub(r"\s+", "", strip_comments(text))
    return set(re.findall(r"client\.([a-z_]+)\(\)", flat)) - {"clone"}


def service_of(text: str) -> str | None:
    for crate, service in SERVICE_OF_CRATE.items():
        if crate in text:
            return service
    return None


def actions_of_file(text: str, service: str) -> set[str]:
    actions = set()
    for op in sdk_calls(text):
        if op == "transact_write_items":
            for part, action in TRANSACTION_PARTS.items():
                if re.search(rf"\b{part}::builder\(\)", text):
                    actions.add(f"dynamodb:{action}")
        else:
            actions.add(f"{service}:{camel(op)}")
    return actions


def records_methods(dynamodb_text: str) -> dict[str, set[str]]:
    """Each method of the shared `Records` helpers and the DynamoDB actions it needs."""
    start = dynamodb_text.index("impl Records<'_> {")
    body = dynamodb_text[start:]
    methods: dict[str, set[str]] = {}
    chunks = re.split(r"\n    pub (?:async )?fn ", body)[1:]
    for chunk in chunks:
        name = chunk.split("(", 1)[0]
        end = chunk.find("\n    }\n")
        methods[name] = actions_of_file(chunk[: end if end >= 0 else None], "dynamodb")
    return methods


def free_helpers(table_text: str) -> dict[str, set[str]]:
    """Each free helper function of `table.rs` (`pub(crate) fn`) that makes SDK calls, and
    the DynamoDB actions it needs (they belong to the files that call it). A helper's body
    counts with the bodies of the module's other functions it calls (the parts of a
    transaction may be built by one)."""
    bodies: dict[str, str] = {}
    public: list[str] = []
    for m in re.finditer(r"\n(pub\(crate\) )?(?:async )?fn (\w+)\(", table_text):
        rest = table_text[m.end():]
        end = rest.find("\n}\n")
        bodies[m.group(2)] = rest[: end if end >= 0 else None]
        if m.group(1):
            public.append(m.group(2))
    out: dict[str, set[str]] = {}
    for name in public:
        text = bodies[name]
        for other, body in bodies.items():
            if other != name and re.search(rf"\b{other}\(", bodies[name]):
                text += "\n" + body
        actions = actions_of_file(text, "dynamodb")
        if actions:
            out[name] = actions
    return out


def adapter_actions() -> dict[str, set[str]]:
    """Adapter type name → the actions its file can call."""
    table_text = (AWS_SRC / "table.rs").read_text()
    helpers = records_methods(table_text)
    free = free_helpers(table_text)
    out: dict[str, set[str]] = {}
    texts: dict[str, str] = {}
    for path in sorted(AWS_SRC.glob("*.rs")):
        text = path.read_text()
        types = re.findall(r"pub struct (\w+)", text)
        service = service_of(text)
        if not types or service is None:
            continue
        for t in types:
            texts[t] = strip_comments(text)
        # The shared helpers' own bodies belong to the files that call them.
        own = text[: text.index("impl Records<'_> {")] if path.name == "table.rs" else text
        actions = actions_of_file(own, service)
        if "Records" in text:
            for name, needs in helpers.items():
                if re.search(rf"records\(\)\s*\.\s*{name}\(", strip_comments(text)):
                    actions |= needs
        for name, needs in free.items():
            if path.name != "table.rs" and re.search(rf"\b{name}\(", strip_comments(text)):
                actions |= needs
        for t in types:
            out[t] = actions
    # An adapter built from another (`Other::new(` in its file) can call what that one can.
    changed = True
    while changed:
        changed = False
        for t, text in texts.items():
            for other in re.findall(r"\b(\w+)::new\(", text):
                if other != t and other in out and not out[other] <= out[t]:
                    out[t] = out[t] | out[other]
                    changed = True
    return out


def wiring_functions() -> dict[str, str]:
    text = strip_comments((AWS_SRC / "wiring.rs").read_text())
    parts = re.split(r"\npub fn ", text)[1:]
    return {p.split("(", 1)[0]: p for p in parts}


def wired_actions(name: str, wiring: dict[str, str], adapters: dict[str, set[str]], seen=None) -> set[str]:
    seen = seen or set()
    if name in seen:
        return set()
    seen.add(name)
    body = wiring[name]
    actions: set[str] = set()
    for adapter in re.findall(r"\b(\w+)::new\(", body):
        actions |= adapters.get(adapter, set())
    for other in wiring:
        if other != name and re.search(rf"(?<![\w:.]){other}\(", body):
            actions |= wired_actions(other, wiring, adapters, seen)
    return actions


def code_actions(binary: str, wiring, adapters) -> set[str]:
    crate = ROOT / "functions" / binary / "src"
    text = "".join(
        strip_comments(p.read_text()) for p in sorted(crate.rglob("*.rs")) if p.name != "tests.rs"
    )
    names = set(re.findall(r"wiring::(?:\{[^}]*\}|(\w+))", text)) - {""}
    for group in re.findall(r"wiring::\{([^}]*)\}", text):
        names |= {n.strip() for n in group.split(",") if n.strip()}
    names |= set(re.findall(r"use sync_aws::\{wiring::(\w+)", text))
    actions: set[str] = set()
    for name in names:
        if name not in wiring:
            raise SystemExit(f"{binary}: calls wiring::{name}, which wiring.rs does not define")
        actions |= wired_actions(name, wiring, adapters)
    return actions


def policy_actions(properties: dict) -> set[str]:
    actions: set[str] = set()
    for policy in properties.get("Policies", []) or []:
        if isinstance(policy, dict) and ("Statement" in policy or "PolicyDocument" in policy):
            document = policy.get("PolicyDocument", policy)
            for statement in document.get("Statement", []):
                if statement.get("Effect") != "Allow":
                    continue
                listed = statement.get("Action", [])
                actions |= {listed} if isinstance(listed, str) else set(listed)
        elif isinstance(policy, dict):
            for name in policy:
                if name not in SAM_POLICY_TEMPLATES:
                    raise SystemExit(f"policy template {name} is not known to this check")
                actions |= set(SAM_POLICY_TEMPLATES[name])
        else:
            raise SystemExit(f"policy {policy!r} is not checked; write it as a statement")
    return actions


def differences(template: dict) -> list[str]:
    wiring = wiring_functions()
    adapters = adapter_actions()
    problems: list[str] = [
        f"exception {key} is not AWS's ({why}): split the adapter instead"
        for key, why in EXCEPTIONS.items()
        if not why.startswith("external:")
    ]
    used_exceptions: set[tuple[str, str]] = set()
    for logical_id, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        needed = {AUTHORISED_AS.get(a, a) for a in code_actions(binary, wiring, adapters)}
        granted = policy_actions(resource["Properties"])
        for action in sorted(needed - granted):
            if (logical_id, action) in EXCEPTIONS:
                used_exceptions.add((logical_id, action))
            else:
                problems.append(f"{logical_id}: its code can call {action}, its policy does not grant it")
        for action in sorted(granted - needed):
            if (logical_id, action) in EXCEPTIONS:
                used_exceptions.add((logical_id, action))
            else:
                problems.append(f"{logical_id}: its policy grants {action}, which none of its code calls")
    for key in sorted(set(EXCEPTIONS) - used_exceptions):
        problems.append(f"exception {key} no longer matches a difference; remove it")
    return problems


def load_template() -> dict:
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)


def self_test() -> int:
    """The check must fail when a policy loses an action or gains one."""
    template = load_template()
    api = template["Resources"]["ScheduleApiFunction"]["Properties"]
    statement = api["Policies"][0]["Statement"][0]
    original = list(statement["Action"])
    statement["Action"] = [a for a in original if a != "dynamodb:PutItem"]
    missing = [p for p in differences(template) if "dynamodb:PutItem" in p]
    statement["Action"] = original + ["dynamodb:Scan"]
    extra = [p for p in differences(template) if "dynamodb:Scan" in p]
    ok = bool(missing) and bool(extra)
    print(f"iam self-test: missing action {'caught' if missing else 'NOT caught'}, "
          f"extra action {'caught' if extra else 'NOT caught'}")
    return 0 if ok else 1


def main() -> int:
    if "--self-test" in sys.argv:
        return self_test()
    problems = differences(load_template())
    for p in problems:
        print(f"iam: {p}")
    functions = sum(
        1 for r in load_template()["Resources"].values() if r.get("Type") == "AWS::Serverless::Function"
    )
    if problems:
        print(f"iam: {len(problems)} difference(s) between code and policies")
        return 1
    print(f"iam: {functions} functions, each policy grants exactly what its code can call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
