"""The QuickBooks simulator's accounting API driven by Intuit-ecosystem's Python client
(`python-quickbooks`), connected through `intuit-oauth` against the simulator's OAuth
service: queries, writes with `SyncToken`, the faults QuickBooks answers with (6240, 5010,
faults inside HTTP 200, 429), `requestid` replay, batch, CDC, and signed webhooks."""

import http.server
import json
import os
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import requests
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import QuickbooksException
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.base import Ref

from test_quickbooks_oauth import connected

# The simulator speaks plain HTTP on loopback; the OAuth session refuses that unless told.
os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"


def books(sims):
    auth, params = connected(sims)
    qb = QuickBooks(
        auth_client=auth,
        refresh_token=auth.refresh_token,
        company_id=params["realmId"],
        minorversion=75,
    )
    qb.sandbox = False
    qb.api_url_v3 = f"{sims['quickbooks_url']}/v3"
    return qb


def admin(sims, path, body=None):
    url = f"{sims['quickbooks_url']}/__admin/qbo/{path}"
    r = requests.post(url, json=body or {}, timeout=10) if body is not None else requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def unique(prefix):
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def new_item(qb, name=None):
    item = Item()
    item.Name = name or unique("Widget")
    item.Type = "NonInventory"
    item.IncomeAccountRef = Ref()
    item.IncomeAccountRef.value = "79"
    return item.save(qb=qb)


def new_customer(qb, name=None, email=None):
    customer = Customer()
    customer.DisplayName = name or unique("Customer")
    if email:
        customer.PrimaryEmailAddr = {"Address": email}
    return customer.save(qb=qb)


def line(item, qty, price):
    l = SalesItemLine()
    l.Amount = round(qty * price, 2)
    l.SalesItemLineDetail = SalesItemLineDetail()
    l.SalesItemLineDetail.ItemRef = item.to_ref()
    l.SalesItemLineDetail.Qty = qty
    l.SalesItemLineDetail.UnitPrice = price
    return l


def test_a_created_customer_is_found_by_query_and_by_id(sims):
    qb = books(sims)
    made = new_customer(qb, email="found@example.com")
    assert made.Id and made.SyncToken == "0"
    found = Customer.query(f"SELECT * FROM Customer WHERE DisplayName = '{made.DisplayName}'", qb=qb)
    assert [c.Id for c in found] == [made.Id]
    assert Customer.get(made.Id, qb=qb).DisplayName == made.DisplayName
    assert Customer.filter(PrimaryEmailAddr="found@example.com", qb=qb)[0].Id == made.Id


def test_a_display_name_that_is_taken_is_refused_with_6240(sims):
    qb = books(sims)
    made = new_customer(qb)
    with pytest.raises(QuickbooksException) as refused:
        new_customer(qb, name=made.DisplayName.upper())
    assert refused.value.error_code == 6240
    with pytest.raises(QuickbooksException) as vendor:
        new_customer(qb, name="Books by Bessie")
    assert vendor.value.error_code == 6240


def test_an_update_with_an_old_sync_token_is_refused_with_5010(sims):
    qb = books(sims)
    made = new_customer(qb)
    stale = Customer.get(made.Id, qb=qb)
    made.Notes = "first"
    made = made.save(qb=qb)
    assert made.SyncToken == "1"
    stale.Notes = "second"
    with pytest.raises(QuickbooksException) as refused:
        stale.save(qb=qb)
    assert refused.value.error_code == 5010
    assert Customer.get(made.Id, qb=qb).Notes == "first"


def test_an_invoice_totals_its_lines_and_bad_line_math_is_refused(sims):
    qb = books(sims)
    item, customer = new_item(qb), new_customer(qb)
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = [line(item, 2, 10.0), line(item, 3, 1.25)]
    invoice = invoice.save(qb=qb)
    assert float(invoice.TotalAmt) == 23.75
    bad = Invoice()
    bad.CustomerRef = customer.to_ref()
    wrong = line(item, 2, 10.0)
    wrong.Amount = 21
    bad.Line = [wrong]
    with pytest.raises(QuickbooksException) as refused:
        bad.save(qb=qb)
    assert refused.value.error_code == 6070


def test_the_same_requestid_answers_the_first_answer_and_creates_nothing(sims):
    qb = books(sims)
    name = unique("Replayed")
    body = json.dumps({"DisplayName": name})
    request_id = uuid.uuid4().hex
    first = qb.create_object("Customer", body, request_id=request_id)
    again = qb.create_object("Customer", body, request_id=request_id)
    assert first["Customer"]["Id"] == again["Customer"]["Id"]
    assert len(Customer.filter(DisplayName=name, qb=qb)) == 1
    assert admin(sims, "stats")["replays"] >= 1


def test_a_fault_inside_http_200_is_a_fault_and_commits_nothing(sims):
    qb = books(sims)
    name = unique("Faulted")
    admin(sims, "faults-in-200", {"count": 1})
    with pytest.raises(QuickbooksException) as failed:
        new_customer(qb, name=name)
    assert failed.value.error_code == 10000
    assert Customer.filter(DisplayName=name, qb=qb) == []


def test_batch_creates_in_order_with_each_fault_inside_the_200(sims):
    qb = books(sims)
    taken = new_customer(qb)
    fresh = [Customer(), Customer()]
    fresh[0].DisplayName = unique("Batch")
    fresh[1].DisplayName = taken.DisplayName
    results = batch_create(fresh, qb=qb)
    assert len(results.successes) == 1
    assert len(results.faults) == 1
    assert results.faults[0].Error[0].code == "6240"


def test_cdc_returns_what_changed_since_and_refuses_more_than_30_days_back(sims):
    qb = books(sims)
    since = datetime.now(timezone.utc) - timedelta(seconds=2)
    made = new_customer(qb)
    changed = change_data_capture([Customer], since.strftime("%Y-%m-%dT%H:%M:%S"), qb=qb)
    assert made.Id in [c.Id for c in changed.Customer]
    with pytest.raises(QuickbooksException):
        change_data_capture([Customer], (datetime.now(timezone.utc) - timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S"), qb=qb)


def test_more_than_ten_requests_at_once_are_throttled_with_429(sims):
    qb = books(sims)
    admin(sims, "limits", {"concurrent": 10, "per_minute": 500, "latency_ms": 300})
    try:
        url = f"{qb.api_url}/company/{qb.company_id}/query"
        headers = {"Authorization": f"Bearer {qb.session.access_token}", "Accept": "application/json"}
        statuses = []

        def call():
            r = requests.get(url, params={"query": "select * from Account"}, headers=headers, timeout=10)
            statuses.append(r.status_code)

        threads = [threading.Thread(target=call) for _ in range(14)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses.count(200) == 10 and statuses.count(429) == 4, statuses
        assert admin(sims, "stats")["max_in_flight"] <= 10
    finally:
        admin(sims, "limits", {"concurrent": 10, "per_minute": 500, "latency_ms": 0})


class Receiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body.decode()))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("form", ["classic", "cloudevents"])
def test_changes_are_delivered_as_signed_webhooks_in_both_formats(sims, form):
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        Receiver.received.clear()
        verifier = f"verifier-{form}"
        admin(sims, "webhooks", {"url": f"http://127.0.0.1:{server.server_port}/", "verifier": verifier, "format": form})
        qb = books(sims)
        made = new_customer(qb)
        deadline = time.time() + 10
        while time.time() < deadline and not any(made.Id in b for _, b in Receiver.received):
            time.sleep(0.1)
        headers, body = next((h, b) for h, b in Receiver.received if made.Id in b)
        assert qb.validate_webhook_signature(body, headers["intuit-signature"], verifier)
        payload = json.loads(body)
        if form == "classic":
            entities = payload["eventNotifications"][0]["dataChangeEvent"]["entities"]
            assert {"name": "Customer", "id": made.Id, "operation": "Create"}.items() <= next(e for e in entities if e["id"] == made.Id).items()
        else:
            assert headers["content-type"] == "application/cloudevents+json"
            event = next(e for e in payload if e["intuitentityid"] == made.Id)
            assert event["type"] == "qbo.customer.created.v1"
            assert event["intuitaccountid"] == sims["quickbooks_realm_id"]
    finally:
        server.shutdown()
