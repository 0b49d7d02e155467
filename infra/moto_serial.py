"""moto's server, answering one request at a time, with one fix to its DynamoDB.

moto's own server is threaded and its DynamoDB checks a write's condition and then makes
the write in two steps that another request can slip between, so two conditional writes
racing on one item can both succeed. In AWS they cannot: conditional writes and
transactions are atomic. Serving requests one at a time gives the local stack and the
tests that guarantee. (SQS long polling would block the server; nothing here long-polls.)
Its sockets also send without waiting (no Nagle), which takes about 40 ms off each request
from clients that wait for the whole response, as the AWS SDK for Rust does.

moto's TransactWriteItems snapshots every table it names with a deep copy before it
starts, so that it can roll back, and does so once per item of the transaction: each
transaction costs time and memory in proportion to the whole table, and a benchmark of a
few thousand webhook claims grew moto to 20 GB. Here the transaction instead remembers the
few items it touches, as they were, and puts just those back if it fails: the same
all-or-nothing outcome, at the cost of the transaction's own items.

Usage: python moto_serial.py -H 127.0.0.1 -p PORT
"""

import copy
import sys
import types

from moto import server
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models.table import Table

_run_simple = server.run_simple


def _one_at_a_time(*args, **kwargs):
    kwargs["threaded"] = False
    return _run_simple(*args, **kwargs)


server.run_simple = _one_at_a_time

# werkzeug writes a response's head and body separately; with Nagle's algorithm on, the
# body waits for the client's delayed ACK of the head (40 ms on Linux), every request.
server.MotoRequestHandler.disable_nagle_algorithm = True

_transact_write_items = dynamodb_models.DynamoDBBackend.transact_write_items


def _touched(backend, transact_items):
    """(table name, key, the item as it is now or None) for each item the transaction names."""
    touched = []
    for entry in transact_items:
        if len(entry) != 1:
            continue  # moto refuses it before writing anything
        op_type, op = next(iter(entry.items()))
        table_name = op.get("TableName")
        if table_name not in backend.tables:
            continue
        table = backend.tables[table_name]
        if op_type == "Put":
            attrs = op.get("Item", {})
            key = {table.hash_key_attr: attrs.get(table.hash_key_attr)}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs.get(table.range_key_attr)
        else:
            key = op.get("Key")
        if not key or any(v is None for v in key.values()):
            continue
        try:
            current = backend.get_item(table_name, key)
        except Exception:  # an invalid key: moto refuses the transaction itself
            continue
        before = copy.deepcopy(current.to_json()["Attributes"]) if current else None
        touched.append((table_name, key, before))
    return touched


def _restore(backend, touched):
    for table_name, key, before in reversed(touched):
        if before is None:
            backend.delete_item(table_name, key)
        else:
            backend.put_item(table_name, before)


def _transact_snapshotting_only_touched_items(self, transact_items):
    touched = _touched(self, transact_items)

    def deepcopy(obj, memo=None):
        # The table "copy" moto keeps for its rollback is the live table itself, so putting
        # it back changes nothing; the touched items are restored below.
        if isinstance(obj, Table):
            return obj
        return copy.deepcopy(obj, memo)

    # Requests are served one at a time, so swapping the module's name is safe.
    dynamodb_models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        _restore(self, touched)
        raise
    finally:
        dynamodb_models.copy = copy


dynamodb_models.DynamoDBBackend.transact_write_items = _transact_snapshotting_only_touched_items

if __name__ == "__main__":
    server.main(sys.argv[1:])
