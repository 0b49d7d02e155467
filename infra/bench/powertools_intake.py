"""The webhook intake a user would write with Powertools for AWS Lambda: verify the
platform's signature, claim each event idempotently in DynamoDB (Powertools' idempotency
utility and its DynamoDB persistence layer), send one SQS message per new event, answer.

It does less than ours: the secrets come from its environment (no connection is looked up,
nothing is unsealed), and it keeps no event log. WooCommerce signs with the secret's HTML
entities decoded; QuickBooks with the verifier token.
"""

import base64
import hashlib
import hmac
import html
import json
import os

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

persistence = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
# Its in-memory cache of records it saw, as large as ours (our intake remembers the 10,000
# keys it queued last): a duplicate reaching the warm container that queued it costs either
# handler no call.
config = IdempotencyConfig(
    expires_after_seconds=7 * 24 * 3600, use_local_cache=True, local_cache_max_items=10_000
)
sqs = boto3.client("sqs")
QUEUE_URL = os.environ["QUEUE_URL"]
WOO_SECRET = html.unescape(os.environ["WOO_WEBHOOK_SECRET"]).encode()
QBO_VERIFIER = os.environ["QBO_VERIFIER_TOKEN"].encode()
REALM = os.environ["QBO_REALM"]


def signature(key, body):
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


@idempotent_function(data_keyword_argument="change", config=config, persistence_store=persistence)
def enqueue(change):
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps(change))
    return {"queued": change["key"]}


def answer(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(body)}


def handler(event, context):
    config.register_lambda_context(context)
    parts = event.get("rawPath", "").strip("/").split("/")
    platform = parts[1] if len(parts) > 2 else ""
    connection = parts[2] if len(parts) > 2 else ""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    body = (event.get("body") or "").encode()
    if platform == "woocommerce":
        given = headers.get("x-wc-webhook-signature", "")
        if not hmac.compare_digest(given, signature(WOO_SECRET, body)):
            return answer(401, {"error": {"message": "bad signature"}})
        order = json.loads(body)
        changes = [{"key": f"{connection}:orders:{order['id']}:{order.get('date_modified_gmt')}",
                    "entity": "orders", "id": str(order["id"])}]
    elif platform == "quickbooks":
        given = headers.get("intuit-signature", "")
        if not hmac.compare_digest(given, signature(QBO_VERIFIER, body)):
            return answer(401, {"error": {"message": "bad signature"}})
        changes = []
        for note in json.loads(body).get("eventNotifications", []):
            if note.get("realmId") != REALM:
                continue
            for e in note.get("dataChangeEvent", {}).get("entities", []):
                changes.append({"key": f"{connection}:{e['name']}:{e['id']}:{e['lastUpdated']}",
                                "entity": e["name"], "id": e["id"]})
    else:
        return answer(404, {"error": {"message": "no such route"}})
    for change in changes:
        enqueue(change=change)
    return answer(200, {"changes": len(changes)})
