"""Assistants routes, driven by the official langgraph-sdk client (and raw
httpx for what the SDK cannot send). One server per module: searches are
scoped by a metadata tag unique to each test."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError, UnprocessableEntityError

from tests.support.server import ServerProcess


def tag() -> dict[str, str]:
    return {"test": uuid.uuid4().hex}


# The platform's system assistant ids: uuid5 of the graph id in its namespace
# 6ba7b821-9dad-11d1-80b4-00c04fd430c8, written out, not derived here.
THREE_STEPS_ID = "3f4e7f66-d1f0-50fc-a3e9-1a83e49a8f8b"
ASKS_ID = "8b75336c-4d58-5155-9d72-eaa5c8a54b82"


async def test_system_assistant_by_graph_id_or_uuid(client: LangGraphClient) -> None:
    by_graph = await client.assistants.get("three_steps")
    assert by_graph["assistant_id"] == THREE_STEPS_ID
    assert by_graph["graph_id"] == "three_steps"
    assert by_graph["metadata"] == {"created_by": "system"}
    by_id = await client.assistants.get(THREE_STEPS_ID)
    assert by_id == by_graph
    assert set(by_id) >= {
        "assistant_id",
        "graph_id",
        "config",
        "context",
        "metadata",
        "name",
        "description",
        "version",
        "created_at",
        "updated_at",
    }


async def test_create_get_update_delete(client: LangGraphClient, db: asyncpg.Pool) -> None:
    created = await client.assistants.create(
        "asks",
        config={"configurable": {"model": "small"}},
        context={"tone": "dry"},
        metadata={"team": "a", "level": 1},
        name="asker",
        description="asks one question",
    )
    aid = created["assistant_id"]
    assert created["graph_id"] == "asks"
    assert created["config"] == {"configurable": {"model": "small"}}
    assert created["context"] == {"tone": "dry"}
    assert created["name"] == "asker"
    assert created["description"] == "asks one question"
    assert created["version"] == 1
    assert await client.assistants.get(aid) == created
    row = await db.fetchrow("SELECT graph_id, version FROM assistants WHERE assistant_id = $1", aid)
    assert dict(row) == {"graph_id": "asks", "version": 1}

    updated = await client.assistants.update(
        aid, metadata={"level": 2}, name="asker 2", graph_id="three_steps"
    )
    assert updated["version"] == 2
    assert updated["name"] == "asker 2"
    assert updated["graph_id"] == "three_steps"
    assert updated["metadata"] == {"team": "a", "level": 2}  # merged
    assert updated["config"] == created["config"]  # not sent: kept
    assert updated["updated_at"] > created["updated_at"]

    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)
    assert await db.fetchval("SELECT count(*) FROM assistants WHERE assistant_id = $1", aid) == 0


async def test_if_exists(client: LangGraphClient) -> None:
    aid = str(uuid.uuid4())
    first = await client.assistants.create("asks", assistant_id=aid, name="first")
    with pytest.raises(ConflictError) as raised:
        await client.assistants.create("asks", assistant_id=aid, if_exists="raise")
    assert aid in raised.value.body["detail"]
    again = await client.assistants.create(
        "three_steps", assistant_id=aid, name="second", if_exists="do_nothing"
    )
    assert again == first


async def test_errors_name_the_field(server: ServerProcess, client: LangGraphClient) -> None:
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.assistants.create("no_such_graph")
    assert raised.value.body["detail"].startswith("graph_id:")
    with pytest.raises(NotFoundError):
        await client.assistants.get(str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await client.assistants.update(str(uuid.uuid4()), name="x")
    with pytest.raises(NotFoundError):
        await client.assistants.delete(str(uuid.uuid4()))
    # The system assistant belongs to langgraph.json.
    with pytest.raises(ConflictError):
        await client.assistants.update("asks", name="mine now")
    with pytest.raises(ConflictError):
        await client.assistants.delete(ASKS_ID)

    async with httpx.AsyncClient(base_url=server.url) as http:
        bad = await http.get("/assistants/not-a-uuid")
        assert bad.status_code == 422
        assert bad.json()["detail"].startswith("assistant_id:")
        no_graph = await http.post("/assistants", json={"name": "x"})
        assert no_graph.status_code == 422
        assert "graph_id" in no_graph.json()["detail"]
        bad_id = await http.post("/assistants", json={"graph_id": "asks", "assistant_id": "x"})
        assert bad_id.status_code == 422
        assert bad_id.json()["detail"].startswith("assistant_id:")
        malformed = await http.post(
            "/assistants", content=b"{", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 422
        bad_sort = await http.post("/assistants/search", json={"sort_by": "nope"})
        assert bad_sort.status_code == 422
        assert bad_sort.json()["detail"].startswith("sort_by:")
        bad_xray = await http.get("/assistants/asks/graph", params={"xray": "sideways"})
        assert bad_xray.status_code == 422


async def test_search_count_and_pagination(server: ServerProcess, client: LangGraphClient) -> None:
    mine = tag()
    for name in ("charlie", "alpha", "bravo"):
        await client.assistants.create("asks", metadata={**mine, "kind": "x"}, name=name)
    await client.assistants.create("three_steps", metadata=mine, name="delta")

    found = await client.assistants.search(metadata=mine, limit=10)
    assert [a["name"] for a in found] == ["delta", "bravo", "alpha", "charlie"]  # newest first
    by_name = await client.assistants.search(
        metadata=mine, sort_by="name", sort_order="asc", limit=10
    )
    assert [a["name"] for a in by_name] == ["alpha", "bravo", "charlie", "delta"]
    assert [a["name"] for a in await client.assistants.search(metadata=mine, graph_id="asks")] == [
        "bravo",
        "alpha",
        "charlie",
    ]
    assert [a["name"] for a in await client.assistants.search(metadata=mine, name="RAV")] == [
        "bravo"
    ]
    assert await client.assistants.count(metadata=mine) == 4
    assert await client.assistants.count(metadata={**mine, "kind": "x"}, graph_id="asks") == 3
    assert await client.assistants.count(metadata=mine, name="zzz") == 0

    page = await client.assistants.search(
        metadata=mine, sort_by="name", sort_order="asc", limit=3, response_format="object"
    )
    assert [a["name"] for a in page["assistants"]] == ["alpha", "bravo", "charlie"]
    assert page["next"] == "3"
    last = await client.assistants.search(
        metadata=mine, sort_by="name", sort_order="asc", limit=3, offset=3, response_format="object"
    )
    assert [a["name"] for a in last["assistants"]] == ["delta"]
    assert last["next"] is None

    selected = await client.assistants.search(metadata=mine, select=["assistant_id", "name"])
    assert all(set(a) == {"assistant_id", "name"} for a in selected)

    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/assistants/search", json={"metadata": mine, "limit": 2, "offset": 1})
        assert r.headers["X-Pagination-Total"] == "4"
        assert r.headers["X-Pagination-Next"] == "3"
        beyond = await http.post("/assistants/search", json={"metadata": mine, "offset": 10})
        assert beyond.json() == []
        assert beyond.headers["X-Pagination-Total"] == "4"


async def test_graph_schemas_and_subgraphs(client: LangGraphClient) -> None:
    drawn = await client.assistants.get_graph("three_steps")
    nodes = {n["id"] for n in drawn["nodes"]}
    assert {"__start__", "one", "two", "three", "__end__"} <= nodes
    assert {"source": "one", "target": "two"} in [
        {"source": e["source"], "target": e["target"]} for e in drawn["edges"]
    ]
    assert (await client.assistants.get_graph("three_steps", xray=True))["nodes"]

    custom = await client.assistants.create("with_tasks")
    schemas = await client.assistants.get_schemas(custom["assistant_id"])
    assert schemas["graph_id"] == "with_tasks"
    assert schemas["input_schema"]["type"] == "object"
    assert schemas["output_schema"]["type"] == "object"
    assert set(schemas) == {
        "graph_id",
        "input_schema",
        "output_schema",
        "state_schema",
        "config_schema",
        "context_schema",
    }
    # typing.TypedDict state on Python 3.11: pydantic refuses it whole, so
    # input and output are null (not an error), while the state is built
    # channel by channel. Expected: langgraph dev's answer for this graph.
    three = await client.assistants.get_schemas("three_steps")
    assert three["graph_id"] == "three_steps"
    assert three["input_schema"] is None
    assert three["output_schema"] is None
    untyped = {"default": None}
    assert three["state_schema"] == {
        "properties": {
            "log": {**untyped, "items": {"type": "string"}, "title": "Log", "type": "array"},
            "sleep_in_two": {**untyped, "title": "Sleep In Two", "type": "number"},
            "gate_in_two": {**untyped, "title": "Gate In Two", "type": "string"},
            "answer": {**untyped, "title": "Answer"},
        },
        "title": "three_steps_state",
        "type": "object",
    }
    # Only what a user may configure, and this graph has nothing.
    assert three["config_schema"] == {}
    assert schemas["input_schema"]["title"] == "with_tasks_input"  # named by its id

    assert await client.assistants.get_subgraphs("three_steps") == {}
    assert await client.assistants.get_subgraphs("three_steps", namespace="x", recurse=True) == {}
    with pytest.raises(NotFoundError):
        await client.assistants.get_schemas(str(uuid.uuid4()))


async def test_every_version_is_kept_and_an_earlier_one_can_be_made_current(
    client: LangGraphClient, db: asyncpg.Pool
) -> None:
    created = await client.assistants.create("asks", metadata={"v": "x"}, name="first")
    aid = created["assistant_id"]
    await client.assistants.update(aid, name="second", config={"configurable": {"k": 2}})
    await client.assistants.update(aid, metadata={"v": "y"})
    versions = await client.assistants.get_versions(aid)
    assert [(v["version"], v["name"], v["metadata"]) for v in versions] == [
        (3, "second", {"v": "y"}),
        (2, "second", {"v": "x"}),
        (1, "first", {"v": "x"}),
    ]
    assert versions[1]["config"] == {"configurable": {"k": 2}}
    assert versions[2]["config"] == {}
    mine = await client.assistants.get_versions(aid, metadata={"v": "x"}, limit=1, offset=1)
    assert [v["version"] for v in mine] == [1]

    # Back to version 1: the assistant is what it was then.
    back = await client.assistants.set_latest(aid, 1)
    assert (back["version"], back["name"], back["metadata"]) == (1, "first", {"v": "x"})
    assert (await client.assistants.get(aid))["config"] == {}
    # The next update is a new version after the highest, not 2 again.
    assert (await client.assistants.update(aid, name="fourth"))["version"] == 4
    assert len(await client.assistants.get_versions(aid)) == 4

    with pytest.raises(NotFoundError):
        await client.assistants.set_latest(aid, 9)
    # Past the column's range: a 422 naming the field, no driver message.
    with pytest.raises(UnprocessableEntityError) as raised:
        await client.assistants.set_latest(aid, 1099511627776)
    assert raised.value.body["detail"].startswith("version")
    assert "$2" not in str(raised.value.body) and "query argument" not in str(raised.value.body)
    with pytest.raises(NotFoundError):
        await client.assistants.get_versions(str(uuid.uuid4()))
    # A system assistant has its one version.
    [system] = await client.assistants.get_versions("asks")
    assert system["version"] == 1 and system["graph_id"] == "asks"
    # Deleting the assistant deletes its versions.
    await client.assistants.delete(aid)
    gone = await db.fetchval(
        "SELECT count(*) FROM assistant_versions WHERE assistant_id = $1", uuid.UUID(aid)
    )
    assert gone == 0


async def test_concurrent_updates_each_make_a_version_of_their_own(
    client: LangGraphClient,
) -> None:
    aid = (await client.assistants.create("asks"))["assistant_id"]
    done = await asyncio.gather(
        *(client.assistants.update(aid, metadata={"n": i}) for i in range(10))
    )
    assert sorted(a["version"] for a in done) == list(range(2, 12))
    versions = await client.assistants.get_versions(aid, limit=100)
    assert [v["version"] for v in versions] == list(range(11, 0, -1))


async def test_delete_with_threads(client: LangGraphClient, db: asyncpg.Pool) -> None:
    created = await client.assistants.create("asks")
    aid = created["assistant_id"]
    theirs = await client.threads.create(metadata={"assistant_id": aid})
    other = await client.threads.create(metadata={"assistant_id": str(uuid.uuid4())})
    await client.assistants.delete(aid, delete_threads=True)
    with pytest.raises(NotFoundError):
        await client.threads.get(theirs["thread_id"])
    assert (await client.threads.get(other["thread_id"]))["thread_id"] == other["thread_id"]


def test_openapi_describes_assistants(server: ServerProcess) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    for path in (
        "/assistants",
        "/assistants/search",
        "/assistants/count",
        "/assistants/{assistant_id}",
        "/assistants/{assistant_id}/graph",
        "/assistants/{assistant_id}/schemas",
        "/assistants/{assistant_id}/subgraphs",
    ):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/assistants/{assistant_id}"]) == {"get", "patch", "delete"}
    assert "Assistant" in spec["components"]["schemas"]
