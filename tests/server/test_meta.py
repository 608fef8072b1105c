from __future__ import annotations

import httpx

from tests.support.server import ServerProcess


def test_ok_info_and_openapi(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/ok").json() == {"ok": True}
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
