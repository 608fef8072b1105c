from __future__ import annotations

import httpx

from tests.support.server import ServerProcess


def test_ok_info_and_openapi(server: ServerProcess) -> None:
    ok = httpx.get(server.url + "/ok").json()
    # serve: the database, and its in-process worker pool's load.
    assert ok["ok"] is True and ok["database"] == {"ok": True}
    assert ok["workers"]["slots"] >= 1 and 0 <= ok["workers"]["running"] <= ok["workers"]["slots"]
    info = httpx.get(server.url + "/info").json()
    assert info["version"]
    spec = httpx.get(server.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert "/ok" in spec["paths"]


def test_unknown_route_and_method_are_4xx_json(server: ServerProcess) -> None:
    missing = httpx.get(server.url + "/no/such/route")
    assert missing.status_code == 404
    assert missing.json()["detail"]
    wrong_method = httpx.delete(server.url + "/ok")
    assert wrong_method.status_code == 405
