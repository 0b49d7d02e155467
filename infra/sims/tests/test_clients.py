"""The simulators driven by the platforms' own client libraries from PyPI, so that they
speak WooCommerce's and PostgREST's dialect and not only ours: `woocommerce` (the official
WooCommerce REST API wrapper, OAuth 1.0a over plain HTTP) for the store, and `postgrest`
(supabase-py's Data API client) for the PostgREST layer over a real PostgreSQL.

The simulators are started once for the session with `syncctl sims` (conftest.py)."""

import uuid

import pytest
from postgrest import SyncPostgrestClient
from postgrest.exceptions import APIError
from woocommerce import API

@pytest.fixture
def store(sims):
    return API(
        url=sims["store_url"],
        consumer_key=sims["consumer_key"],
        consumer_secret=sims["consumer_secret"],
        version="wc/v3",
        timeout=10,
    )


@pytest.fixture
def project(sims):
    key = sims["service_key"]
    with SyncPostgrestClient(
        f"{sims['project_url']}/rest/v1",
        headers={"apikey": key, "Authorization": f"Bearer {key}"},
    ) as client:
        yield client


# ------------------------------------------------------------------------- WooCommerce


def test_the_store_pages_orders_with_wordpress_total_headers(store):
    first = store.get("orders", params={"per_page": 25, "page": 1, "orderby": "id", "order": "asc"})
    assert first.status_code == 200
    total = int(first.headers["X-WP-Total"])
    pages = int(first.headers["X-WP-TotalPages"])
    assert total >= 60 and pages == -(-total // 25)
    seen = [o["id"] for o in first.json()]
    for page in range(2, pages + 1):
        seen += [o["id"] for o in store.get("orders", params={"per_page": 25, "page": page, "orderby": "id", "order": "asc"}).json()]
    assert len(seen) == len(set(seen)) == total
    assert seen == sorted(seen)


def test_the_store_refuses_more_than_100_per_page_as_wordpress_does(store):
    got = store.get("orders", params={"per_page": 101})
    assert got.status_code == 400
    assert got.json()["code"] == "rest_invalid_param"


def test_modified_after_is_exclusive_and_in_gmt_when_asked(store):
    orders = store.get("orders", params={"per_page": 100, "orderby": "modified", "order": "asc", "dates_are_gmt": "true"}).json()
    pivot = orders[len(orders) // 2]["date_modified_gmt"]
    later = store.get(
        "orders",
        params={"per_page": 100, "modified_after": pivot, "dates_are_gmt": "true", "orderby": "modified", "order": "asc"},
    ).json()
    assert later and all(o["date_modified_gmt"] > pivot for o in later)


def test_products_are_created_and_updated_in_batches_of_at_most_100(store):
    sku = f"PY-{uuid.uuid4().hex[:8]}"
    created = store.post("products/batch", {"create": [{"name": "Python mug", "sku": sku, "regular_price": "9.50"}]})
    assert created.status_code == 200, created.text
    product = created.json()["create"][0]
    assert product["sku"] == sku and product["regular_price"] == "9.50"
    updated = store.post("products/batch", {"update": [{"id": product["id"], "regular_price": "10.00"}]}).json()
    assert updated["update"][0]["regular_price"] == "10.00"
    too_many = store.post("products/batch", {"create": [{"name": f"p{i}"} for i in range(101)]})
    assert too_many.status_code == 413
    duplicate = store.post("products", {"name": "Again", "sku": sku})
    assert duplicate.status_code == 400


def test_webhooks_are_created_listed_and_deleted(store):
    hook = store.post(
        "webhooks",
        {"name": "py", "topic": "order.updated", "delivery_url": "http://127.0.0.1:9/hook", "secret": "s3cret"},
    )
    assert hook.status_code == 201, hook.text
    hook_id = hook.json()["id"]
    assert any(h["id"] == hook_id for h in store.get("webhooks").json())
    refused = store.delete(f"webhooks/{hook_id}")
    assert refused.status_code in (400, 501)
    assert store.delete(f"webhooks/{hook_id}", params={"force": True}).status_code == 200
    assert all(h["id"] != hook_id for h in store.get("webhooks").json())


def test_a_wrong_consumer_secret_is_refused(sims):
    wrong = API(url=sims["store_url"], consumer_key=sims["consumer_key"], consumer_secret="cs_wrong", version="wc/v3")
    got = wrong.get("orders")
    assert got.status_code == 401


# ------------------------------------------------------------------------- PostgREST


def test_upserts_on_the_source_key_then_reads_in_keyset_order(project):
    source = f"py-{uuid.uuid4().hex[:8]}"
    rows = [
        {"id": f"{source}-{n}", "sku": f"{source}-SKU-{n}", "name": f"Item {n}", "price": f"{n}.25", "source": "py", "source_id": str(n)}
        for n in range(5)
    ]
    project.table("products").upsert(rows, on_conflict="id").execute()
    rows[1]["name"] = "Renamed"
    project.table("products").upsert(rows[:2], on_conflict="id").execute()
    got = (
        project.table("products")
        .select("id,name,price")
        .like("id", f"{source}-%")
        .order("updated_at")
        .order("id")
        .execute()
    )
    assert len(got.data) == 5
    assert {r["id"]: r["name"] for r in got.data}[f"{source}-1"] == "Renamed"
    assert {str(r["price"]) for r in got.data} >= {"0.25", "4.25"}


def test_filters_limit_and_exact_count(project):
    source = f"py-{uuid.uuid4().hex[:8]}"
    project.table("customers").insert(
        [{"id": f"{source}-{n}", "email": f"{source}-{n}@example.com"} for n in range(7)]
    ).execute()
    got = (
        project.table("customers")
        .select("id", count="exact")
        .like("id", f"{source}-%")
        .in_("id", [f"{source}-1", f"{source}-2", f"{source}-3"])
        .limit(2)
        .execute()
    )
    assert got.count == 3
    assert len(got.data) == 2


def test_a_duplicate_key_is_a_conflict_in_postgrests_words(project):
    row = {"id": f"py-{uuid.uuid4().hex[:8]}", "email": "dup@example.com"}
    with pytest.raises(APIError) as caught:
        project.table("customers").insert([row, dict(row, id=row["id"] + "x")]).execute()
    assert caught.value.code == "23505"


def test_a_wrong_key_is_refused(sims):
    with SyncPostgrestClient(
        f"{sims['project_url']}/rest/v1", headers={"apikey": "nope", "Authorization": "Bearer nope"}
    ) as client:
        with pytest.raises(APIError):
            client.table("products").select("id").limit(1).execute()
