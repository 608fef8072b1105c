"""The store routes, driven by the official SDK (and raw HTTP where the SDK
would refuse to send a bad request itself)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from langgraph_sdk.client import LangGraphClient

from tests.support.server import ServerProcess


async def test_put_get_update_delete_an_item(client: LangGraphClient) -> None:
    store = client.store
    await store.put_item(["users", "alice"], "prefs", {"theme": "dark", "size": 3})
    item = await store.get_item(["users", "alice"], "prefs")
    assert item["namespace"] == ["users", "alice"]
    assert item["key"] == "prefs"
    assert item["value"] == {"theme": "dark", "size": 3}
    assert item["created_at"] and item["updated_at"]

    await store.put_item(["users", "alice"], "prefs", {"theme": "light"})
    again = await store.get_item(["users", "alice"], "prefs")
    assert again["value"] == {"theme": "light"}
    assert again["created_at"] == item["created_at"]
    assert again["updated_at"] >= item["updated_at"]

    await store.delete_item(["users", "alice"], "prefs")
    # Gone: null, as on the platform (the SDK returns None).
    assert await store.get_item(["users", "alice"], "prefs") is None
    # Deleting what is not there is not an error.
    await store.delete_item(["users", "alice"], "prefs")


async def test_search_by_prefix_filter_and_page(client: LangGraphClient) -> None:
    store = client.store
    for i in range(5):
        await store.put_item(["docs", "search", f"u{i % 2}"], f"d{i}", {"n": i, "kind": "note"})
    await store.put_item(["docs", "search", "u0"], "other", {"n": 99, "kind": "memo"})
    await store.put_item(["docs", "elsewhere"], "x", {"n": 1, "kind": "note"})

    every = (await store.search_items(["docs", "search"], limit=100))["items"]
    assert len(every) == 6
    assert all(i["namespace"][:2] == ["docs", "search"] for i in every)
    assert all("score" in i for i in every)

    notes = (await store.search_items(["docs", "search"], filter={"kind": "note"}, limit=100))[
        "items"
    ]
    assert sorted(i["key"] for i in notes) == ["d0", "d1", "d2", "d3", "d4"]
    big = (await store.search_items(["docs"], filter={"n": {"$gte": 4}}, limit=100))["items"]
    assert sorted(i["key"] for i in big) == ["d4", "other"]

    first = (await store.search_items(["docs", "search"], limit=4))["items"]
    rest = (await store.search_items(["docs", "search"], limit=4, offset=4))["items"]
    assert len(first) == 4 and len(rest) == 2
    assert not {i["key"] for i in first} & {i["key"] for i in rest}
    # Without an embedding index a query does not narrow anything down.
    assert (
        len((await store.search_items(["docs", "search"], query="note", limit=100))["items"]) == 6
    )


async def test_list_namespaces(client: LangGraphClient) -> None:
    store = client.store
    for ns in (["ns", "a", "x"], ["ns", "a", "y"], ["ns", "b", "x"], ["other", "a"]):
        await store.put_item(ns, "k", {"v": 1})

    under = (await store.list_namespaces(prefix=["ns"]))["namespaces"]
    assert sorted(under) == [["ns", "a", "x"], ["ns", "a", "y"], ["ns", "b", "x"]]
    ending = (await store.list_namespaces(prefix=["ns"], suffix=["x"]))["namespaces"]
    assert sorted(ending) == [["ns", "a", "x"], ["ns", "b", "x"]]
    shallow = (await store.list_namespaces(prefix=["ns"], max_depth=2))["namespaces"]
    assert sorted(shallow) == [["ns", "a"], ["ns", "b"]]
    wildcard = (await store.list_namespaces(prefix=["ns", "*", "y"]))["namespaces"]
    assert wildcard == [["ns", "a", "y"]]
    page = (await store.list_namespaces(prefix=["ns"], limit=2, offset=1))["namespaces"]
    assert len(page) == 2


async def test_an_item_past_its_ttl_is_gone_from_every_read(
    client: LangGraphClient, db: asyncpg.Pool
) -> None:
    store = client.store
    await store.put_item(["ttl", "short"], "brief", {"v": 1}, ttl=10)
    await store.put_item(["ttl", "long"], "lasting", {"v": 2})
    assert (await store.get_item(["ttl", "short"], "brief"))["value"] == {"v": 1}
    # The item's ten minutes run out: back-dated, not slept through.
    await db.execute(
        "UPDATE store SET expires_at = now() - interval '1 second' WHERE key = 'brief'"
    )
    assert await store.get_item(["ttl", "short"], "brief") is None
    found = (await store.search_items(["ttl"], limit=100))["items"]
    assert [i["key"] for i in found] == ["lasting"]
    assert (await store.list_namespaces(prefix=["ttl"]))["namespaces"] == [["ttl", "long"]]
    # tests/graphs/langgraph.json gives items put without a TTL 600 minutes;
    # a read starts it over (refresh_on_read, the platform's default). The
    # item is one minute from expiring (back-dated), then read.
    await db.execute(
        "UPDATE store SET expires_at = now() + interval '1 minute' WHERE key = 'lasting'"
    )
    assert (await store.get_item(["ttl", "long"], "lasting"))["value"] == {"v": 2}
    left = await db.fetchval(
        "SELECT extract(epoch FROM expires_at - now()) / 60 FROM store WHERE key = 'lasting'"
    )
    assert 599 < float(left) <= 600


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"namespace": ["a"], "key": "k", "value": [1, 2]}, "value"),
        ({"namespace": ["a"], "key": "k", "value": "text"}, "value"),
        ({"namespace": ["a"], "key": "k"}, "value"),
        ({"namespace": ["a.b"], "key": "k", "value": {}}, "namespace"),
        ({"namespace": ["a", ""], "key": "k", "value": {}}, "namespace"),
        ({"namespace": [], "key": "k", "value": {}}, "namespace"),
        ({"namespace": ["a", 3], "key": "k", "value": {}}, "namespace"),
        ({"namespace": ["langgraph"], "key": "k", "value": {}}, "namespace"),
        ({"namespace": ["a"], "key": "", "value": {}}, "key"),
        ({"namespace": ["a"], "key": "k", "value": {}, "ttl": -1}, "ttl"),
        ({"namespace": ["a"], "key": "k", "value": {"x": ["\u0000"]}}, "value"),
    ],
)
def test_put_refuses_bad_items_naming_the_field(
    server: ServerProcess, body: dict[str, Any], field: str
) -> None:
    error = _error(httpx.put(server.url + "/store/items", json=body))
    assert error["detail"].startswith(field), error


def test_get_refuses_bad_namespaces_and_answers_a_miss_with_null(server: ServerProcess) -> None:
    url = server.url + "/store/items"
    assert _error(httpx.get(url, params={"namespace": "a..b", "key": "k"}))["detail"].startswith(
        "namespace"
    )
    assert _error(httpx.get(url, params={"namespace": "", "key": "k"}))["detail"].startswith(
        "namespace"
    )
    assert _error(httpx.get(url, params={"namespace": "a"}))["detail"].startswith("key")
    # As on the platform: 200 and null, which the SDKs return as None.
    missing = httpx.get(url, params={"namespace": "nobody.here", "key": "k"})
    assert missing.status_code == 200
    assert missing.json() is None


def test_search_and_namespaces_refuse_bad_input(server: ServerProcess) -> None:
    search = server.url + "/store/items/search"
    assert _error(httpx.post(search, json={"namespace_prefix": ["a.b"]}))["detail"].startswith(
        "namespace_prefix"
    )
    assert _error(httpx.post(search, json={"limit": 0}))["detail"].startswith("limit")
    assert _error(httpx.post(search, json={"offset": -1}))["detail"].startswith("offset")
    nested = _error(httpx.post(search, json={"filter": {"a": {"b": 1}}}))
    assert nested["detail"].startswith("filter.a")
    spaces = server.url + "/store/namespaces"
    assert _error(httpx.post(spaces, json={"max_depth": 0}))["detail"].startswith("max_depth")
    assert _error(httpx.post(spaces, json={"prefix": ["x.y"]}))["detail"].startswith("prefix")


def test_the_store_is_in_the_openapi_document(server: ServerProcess) -> None:
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    assert set(paths["/store/items"]) == {"put", "get", "delete"}
    assert "post" in paths["/store/items/search"]
    assert "post" in paths["/store/namespaces"]
