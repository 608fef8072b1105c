"""langgraph.json's webhooks policy (pgqueue/execution/webhook_policy.py):
which URLs it refuses, by default and as configured, after real DNS
resolution (only ``localhost`` resolves offline: to loopback), and which
sections it refuses at start, naming the key."""

from __future__ import annotations

from typing import Any

import pytest

from pgqueue.errors import ConfigError
from pgqueue.execution.webhook_policy import PAYLOAD_FIELDS, WebhookPolicy

DEFAULT = WebhookPolicy()
OPEN = WebhookPolicy.from_section(
    {"url": {"disable_loopback": False, "disable_private_ips": False}}
)

REFUSED_BY_DEFAULT = [
    ("http://127.0.0.1:8000/hook", "loopback"),
    ("http://[::1]:8000/hook", "loopback"),
    ("http://0.0.0.0/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),  # IPv4-mapped
    ("http://[2002:7f00:1::]/", "loopback"),  # 6to4 around 127.0.0.1
    ("http://127.1/", "loopback"),  # a short form: judged as resolved
    ("http://2130706433/", "loopback"),  # 127.0.0.1 as one number
    ("http://localhost:8000/hook", "loopback"),
    ("http://LocalHost./hook", "loopback"),
    ("http://api.localhost/hook", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://172.16.5.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://100.64.0.1/", "private"),  # carrier-grade NAT
    ("http://[fc00::1]/", "private"),
    ("http://[64:ff9b::a00:1]/", "private"),  # NAT64 around 10.0.0.1
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
]


@pytest.mark.parametrize(("url", "kind"), REFUSED_BY_DEFAULT)
async def test_inward_addresses_are_refused_by_default(url: str, kind: str) -> None:
    problem = await DEFAULT.check(url)
    assert problem is not None and kind in problem, problem
    # ...and the message says which setting would allow it.
    setting = "disable_loopback" if kind == "loopback" else "disable_private_ips"
    assert f"webhooks.url.{setting}: false" in problem


@pytest.mark.parametrize(("url", "kind"), REFUSED_BY_DEFAULT)
async def test_the_operator_can_allow_them(url: str, kind: str) -> None:
    problem = await OPEN.check(url)
    # Names under localhost pass the policy; no resolver here knows them.
    assert problem is None or "does not resolve" in problem, problem


async def test_each_switch_allows_only_its_own_kind() -> None:
    loopback = WebhookPolicy.from_section({"url": {"disable_loopback": False}})
    assert await loopback.check("http://localhost:1/") is None
    assert "private" in str(await loopback.check("http://10.0.0.1/"))
    private = WebhookPolicy.from_section({"url": {"disable_private_ips": False}})
    assert await private.check("http://169.254.169.254/") is None
    assert "loopback" in str(await private.check("http://127.0.0.1/"))


@pytest.mark.parametrize(
    "url", ["http://224.0.0.1/", "http://192.0.2.1/", "http://240.0.0.1/", "http://[ff02::1]/"]
)
async def test_no_switch_allows_what_is_no_destination(url: str) -> None:
    assert "not a public address" in str(await OPEN.check(url))


async def test_a_name_is_judged_by_what_it_resolves_to() -> None:
    """A name goes through the resolver (here "127.1", which it reads as
    127.0.0.1) and is refused for the address it gets; an allowed one
    keeps the addresses it was judged by, for the delivery to connect to."""
    assert "host 127.1 resolves to a loopback address" in str(await DEFAULT.check("http://127.1/"))
    found = await OPEN.resolve("http://localhost:1/")
    assert not isinstance(found, str) and "127.0.0.1" in found.addresses


async def test_public_addresses_pass() -> None:
    assert await DEFAULT.check("http://8.8.8.8/hook") is None
    assert await DEFAULT.check("https://[2606:4700:4700::1111]/hook") is None


@pytest.mark.parametrize(
    "url",
    ["http://user:pass@8.8.8.8/", "http://user@8.8.8.8/", "https://:token@8.8.8.8/"],
)
async def test_credentials_in_the_url_are_refused(url: str) -> None:
    assert "credentials" in str(await OPEN.check(url))


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    assert "does not resolve" in str(await DEFAULT.check("http://no-such-host.invalid/"))


async def test_allowed_domains_wildcards_match_subdomains_only() -> None:
    policy = WebhookPolicy.from_section(
        {"url": {"allowed_domains": ["hooks.example.com", "*.corp.test"]}}
    )
    for url in ("http://corp.test/", "http://example.com/", "http://evilcorp.test/"):
        assert "not in webhooks.url.allowed_domains" in str(await policy.check(url)), url
    # Past the list (nothing resolves here: DNS is what refuses them).
    for url in ("http://a.corp.test/", "http://a.b.CORP.test/", "http://hooks.example.com/"):
        assert "does not resolve" in str(await policy.check(url)), url
    # The list never lets an inward address through.
    inward = WebhookPolicy.from_section({"url": {"allowed_domains": ["127.0.0.1"]}})
    assert "loopback" in str(await inward.check("http://127.0.0.1/"))


async def test_https_ports_and_length() -> None:
    policy = WebhookPolicy.from_section(
        {"url": {"require_https": True, "allowed_ports": [443, 8443], "max_url_length": 30}}
    )
    assert "https" in str(await policy.check("http://8.8.8.8/"))
    assert await policy.check("https://8.8.8.8/") is None  # 443, the scheme's own
    assert await policy.check("https://8.8.8.8:8443/") is None
    assert "allowed_ports" in str(await policy.check("https://8.8.8.8:444/"))
    assert "max_url_length" in str(await policy.check("https://8.8.8.8/" + "x" * 30))
    # The default: plain HTTP is allowed (see the module's docstring).
    assert await DEFAULT.check("http://8.8.8.8/") is None


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ([], "webhooks must be an object"),
        ({"urls": {}}, "unknown key(s) ['urls']"),
        ({"url": {"disable_loopbak": False}}, "webhooks.url: unknown key(s)"),
        ({"url": []}, "webhooks.url must be an object"),
        ({"url": {"require_https": "yes"}}, "webhooks.url.require_https"),
        ({"url": {"disable_private_ips": 0}}, "webhooks.url.disable_private_ips"),
        ({"url": {"allowed_domains": "example.com"}}, "webhooks.url.allowed_domains"),
        ({"url": {"allowed_domains": ["ok.com", "*corp.com"]}}, "allowed_domains[1]"),
        ({"url": {"allowed_domains": ["a.*.com"]}}, "allowed_domains[0]"),
        ({"url": {"allowed_domains": ["*"]}}, "allowed_domains[0]"),
        ({"url": {"allowed_ports": [0]}}, "webhooks.url.allowed_ports"),
        ({"url": {"allowed_ports": ["443"]}}, "webhooks.url.allowed_ports"),
        ({"url": {"max_url_length": True}}, "webhooks.url.max_url_length"),
        ({"env_prefix": ""}, "webhooks.env_prefix"),
        ({"headers": ["X-A"]}, "webhooks.headers"),
        ({"headers": {"X-A": 1}}, "webhooks.headers.X-A"),
        ({"headers": {"Bad Name": "x"}}, "webhooks.headers: 'Bad Name'"),
        ({"headers": {"Host": "x"}}, "webhooks.headers: 'Host'"),
        ({"headers": {"X-A": "${{ env.HOME }}"}}, "$HOME does not start with env_prefix"),
        ({"headers": {"X-A": "${{ HOME }}"}}, "webhooks.headers.X-A: a template"),
        ({"allowed_fields": ["run_id", "secrets"]}, "webhooks.allowed_fields: unknown"),
        ({"allowed_fields": "run_id"}, "webhooks.allowed_fields"),
    ],
)
def test_a_bad_section_is_refused_naming_the_key(section: Any, key: str) -> None:
    with pytest.raises(ConfigError) as raised:
        WebhookPolicy.from_section(section, "/app/langgraph.json")
    assert str(raised.value).startswith("/app/langgraph.json: webhooks")
    assert key in str(raised.value)


def test_header_templates_resolve_from_the_values_given() -> None:
    policy = WebhookPolicy.from_section(
        {
            "env_prefix": "HOOK_",
            "headers": {"Authorization": "Bearer ${{ env.HOOK_TOKEN }}", "X-Static": "v"},
        }
    )
    environ = {"HOOK_TOKEN": "t0k"}
    assert policy.render_headers(environ) == {"Authorization": "Bearer t0k", "X-Static": "v"}
    for missing in ({}, {"HOOK_TOKEN": ""}):
        with pytest.raises(ConfigError, match=r"Authorization: \$HOOK_TOKEN is not set"):
            policy.render_headers(missing)
    with pytest.raises(ConfigError, match="line break"):
        policy.render_headers({"HOOK_TOKEN": "a\r\nX-Injected: 1"})


def test_allowed_fields_keep_only_those() -> None:
    policy = WebhookPolicy.from_section({"allowed_fields": ["run_id", "status"]})
    body = {name: 1 for name in PAYLOAD_FIELDS}
    assert policy.select(body) == {"run_id": 1, "status": 1}
    assert DEFAULT.select(body) == body
