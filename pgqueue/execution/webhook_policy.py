"""Where a run's webhook may be sent: langgraph.json's ``webhooks`` section,
in the platform's format, checked at start and applied to every URL.

    {"webhooks": {
        "env_prefix": "LG_WEBHOOK_",
        "url": {"require_https": false, "allowed_domains": ["hooks.example.com", "*.corp.com"],
                "allowed_ports": [443], "max_url_length": 2048,
                "disable_loopback": true, "disable_private_ips": true},
        "headers": {"X-Token": "${{ env.LG_WEBHOOK_TOKEN }}"},
        "allowed_fields": ["run_id", "status", "values"]}}

Stricter than the platform by default: a webhook is the server making a
request on a client's behalf, so unless the operator says otherwise it may
not reach the server's own machine (loopback), its network (private,
link-local: cloud metadata lives at 169.254.169.254) or addresses that are
no destination at all (multicast, reserved). The address is judged after
DNS: a name is refused if any address it resolves to is. ``require_https``
stays off by default: a receiver on plain HTTP inside a trusted network is
common, and signing (pgqueue/execution/webhooks.py) covers integrity.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

import httpx

from pgqueue.errors import ConfigError

DEFAULT_ENV_PREFIX = "LG_WEBHOOK_"
# A lookup that hangs must not hold a request (or a delivery) for long.
RESOLVE_TIMEOUT = 5.0

# What execution/webhooks.py ``payload`` posts: the names allowed_fields
# may keep.
PAYLOAD_FIELDS = frozenset(
    {
        "run_id",
        "thread_id",
        "assistant_id",
        "metadata",
        "kwargs",
        "status",
        "attempt",
        "run_started_at",
        "run_ended_at",
        "webhook_sent_at",
        "values",
        "error",
    }
)
# Headers the sender sets itself; a configured one would contradict them.
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "x-pgqueue-signature"}
)

_URL_KEYS = {
    "require_https",
    "allowed_domains",
    "allowed_ports",
    "max_url_length",
    "disable_loopback",
    "disable_private_ips",
}
_SECTION_KEYS = {"env_prefix", "url", "headers", "allowed_fields"}
_TEMPLATE = re.compile(r"\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")

# "This network": Linux connects 0.0.0.0/8 to the local host.
_THIS_HOST = (ip_network("0.0.0.0/8"),)
# RFC 1918, carrier-grade NAT (RFC 6598), IPv6 unique local.
_PRIVATE = tuple(
    ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ip_network("64:ff9b::/96")

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True)
class Target:
    """A URL the policy allowed, and the addresses it was judged by: a
    delivery connects to those, not to whatever a second lookup says."""

    url: httpx.URL
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class WebhookPolicy:
    require_https: bool = False
    # Exact hosts and "*.example.com" (subdomains, not the apex); empty: any.
    allowed_domains: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] = ()
    max_url_length: int | None = None
    disable_loopback: bool = True
    disable_private_ips: bool = True
    env_prefix: str = DEFAULT_ENV_PREFIX
    # Header templates as written; pgqueue.cli resolves them (``render_headers``).
    headers: tuple[tuple[str, str], ...] = ()
    allowed_fields: tuple[str, ...] | None = None

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None, where: str = "") -> WebhookPolicy:
        """The policy langgraph.json's ``webhooks`` section describes, or a
        ConfigError naming the key that is wrong (``where``: the file)."""
        return _parse(
            {} if section is None else section, f"{where}: webhooks" if where else "webhooks"
        )

    # -- URLs ------------------------------------------------------------------

    async def check(self, url: str) -> str | None:
        """Why ``url`` may not receive a webhook, or None."""
        found = await self.resolve(url)
        return found if isinstance(found, str) else None

    async def resolve(self, url: str) -> Target | str:
        """``url`` with the addresses it may be sent to, or the problem."""
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            return f"not a valid URL: {exc}"
        problem = self._url_problem(url, parsed)
        if problem is not None:
            return problem
        host = parsed.host
        try:
            addresses: list[IPAddress] = [ip_address(host)]
            named = False
        except ValueError:
            named = True
            if self.disable_loopback and _localhost(host):
                return f"{host} is this machine (loopback); {_ALLOW_LOOPBACK}"
            try:
                addresses = await _lookup(parsed.raw_host.decode("ascii"), _port(parsed))
            except (OSError, UnicodeError, TimeoutError) as exc:
                return f"host {host} does not resolve ({exc.__class__.__name__})"
        for address in addresses:
            why = self._address_problem(address)
            if why is not None:
                # A name's addresses stay unsaid: no map of internal DNS.
                return f"host {host} resolves to {why}" if named else f"{host} is {why}"
        return Target(parsed, tuple(dict.fromkeys(str(a) for a in addresses)))

    def _url_problem(self, url: str, parsed: httpx.URL) -> str | None:
        if self.max_url_length is not None and len(url) > self.max_url_length:
            return f"longer than {self.max_url_length} characters (webhooks.url.max_url_length)"
        if parsed.scheme not in ("http", "https"):
            return "must be an http:// or https:// URL"
        if self.require_https and parsed.scheme != "https":
            return "must be an https:// URL (webhooks.url.require_https)"
        if parsed.userinfo:
            return "must not carry credentials (user:password@); use webhooks.headers"
        host = parsed.host.rstrip(".").lower()
        if not host:
            return "has no host"
        if self.allowed_domains and not any(_matches(host, d) for d in self.allowed_domains):
            return f"host {host} is not in webhooks.url.allowed_domains"
        port = _port(parsed)
        if not 0 < port < 65536:
            return f"port {port} is not a port"
        if self.allowed_ports and port not in self.allowed_ports:
            return f"port {port} is not in webhooks.url.allowed_ports"
        return None

    def _address_problem(self, address: IPAddress) -> str | None:
        address = _embedded_v4(address) or address
        if address.is_loopback or address.is_unspecified or _within(address, _THIS_HOST):
            return f"a loopback address; {_ALLOW_LOOPBACK}" if self.disable_loopback else None
        if address.is_link_local:
            # Where clouds answer with credentials: 169.254.169.254.
            kind = "a link-local address"
        elif _within(address, _PRIVATE) or _site_local(address):
            kind = "a private address"
        else:
            kind = ""
        if kind:
            return f"{kind}; {_ALLOW_PRIVATE}" if self.disable_private_ips else None
        if address.is_multicast or address.is_reserved or not address.is_global:
            return "not a public address"
        return None

    # -- what a delivery carries -----------------------------------------------

    def render_headers(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The headers with their ``${{ env.VAR }}`` templates filled from
        ``environ`` (the CLI passes the process environment); a variable
        that is unset or empty is a ConfigError naming it."""
        rendered: dict[str, str] = {}
        for name, template in self.headers:

            def value(match: re.Match[str], name: str = name) -> str:
                var = match.group(1)
                if not environ.get(var):
                    raise ConfigError(
                        f"webhooks.headers.{name}: ${var} is not set (its template needs it)"
                    )
                return environ[var]

            text = _TEMPLATE.sub(value, template)
            if any(c in text for c in "\r\n\0"):
                raise ConfigError(f"webhooks.headers.{name}: its value holds a line break")
            rendered[name] = text
        return rendered

    def select(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The payload's fields that ``allowed_fields`` keeps (all if unset)."""
        if self.allowed_fields is None:
            return dict(body)
        return {k: v for k, v in body.items() if k in self.allowed_fields}


_ALLOW_LOOPBACK = "langgraph.json's webhooks.url.disable_loopback: false allows it"
_ALLOW_PRIVATE = "langgraph.json's webhooks.url.disable_private_ips: false allows it"


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


def _localhost(host: str) -> bool:
    # RFC 6761: "localhost" and every name under it are this machine,
    # whatever a resolver says.
    host = host.rstrip(".").lower()
    return host == "localhost" or host.endswith(".localhost")


def _matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _within(address: IPAddress, networks: Iterable[Any]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


def _site_local(address: IPAddress) -> bool:
    return isinstance(address, IPv6Address) and address.is_site_local


def _embedded_v4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64): it is
    where a connection ends up, so it is the one judged."""
    if not isinstance(address, IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


async def _lookup(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(
        loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT
    )
    if not infos:
        raise OSError("no address")
    # A link-local IPv6 answer may carry its interface: "fe80::1%eth0".
    return [ip_address(str(info[4][0]).split("%")[0]) for info in infos]


# -- the section, checked ------------------------------------------------------


def _parse(section: Mapping[str, Any], where: str) -> WebhookPolicy:
    if not isinstance(section, Mapping):
        raise ConfigError(f"{where} must be an object")
    _known(section, _SECTION_KEYS, where)
    url = _or(section.get("url"), {})
    if not isinstance(url, Mapping):
        raise ConfigError(f"{where}.url must be an object")
    _known(url, _URL_KEYS, f"{where}.url")
    flags = {}
    for key, default in (
        ("require_https", False),
        ("disable_loopback", True),
        ("disable_private_ips", True),
    ):
        flags[key] = url.get(key, default)
        if not isinstance(flags[key], bool):
            raise ConfigError(f"{where}.url.{key} must be true or false")
    prefix = section.get("env_prefix", DEFAULT_ENV_PREFIX)
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"{where}.env_prefix must be a non-empty string")
    length = url.get("max_url_length")
    if length is not None and (not _integer(length) or length < 1):
        raise ConfigError(f"{where}.url.max_url_length must be a positive whole number")
    fields = section.get("allowed_fields")
    if fields is not None:
        fields = tuple(_strings(fields, f"{where}.allowed_fields"))
        unknown = sorted(set(fields) - PAYLOAD_FIELDS)
        if unknown:
            raise ConfigError(
                f"{where}.allowed_fields: unknown field(s) {unknown}; "
                f"a webhook has {sorted(PAYLOAD_FIELDS)}"
            )
    return WebhookPolicy(
        allowed_domains=_domains(url.get("allowed_domains"), f"{where}.url.allowed_domains"),
        allowed_ports=_ports(url.get("allowed_ports"), f"{where}.url.allowed_ports"),
        max_url_length=length,
        env_prefix=prefix,
        headers=_headers(section.get("headers"), prefix, f"{where}.headers"),
        allowed_fields=fields,
        **flags,
    )


def _known(section: Mapping[str, Any], keys: set[str], where: str) -> None:
    # A misspelt key of a security policy must not pass for its default.
    unknown = sorted(set(section) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(keys)}")


def _or(value: Any, default: Any) -> Any:
    # null reads as absent; any other value is judged as given.
    return default if value is None else value


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of strings")
    return value


def _domains(value: Any, where: str) -> tuple[str, ...]:
    domains = []
    for index, entry in enumerate(_strings(_or(value, []), where)):
        name = entry.lower().rstrip(".")
        bare = name[2:] if name.startswith("*.") else name
        if not _HOSTNAME.match(bare):
            raise ConfigError(
                f"{where}[{index}]: {entry!r} is neither a host name nor '*.' and one "
                "(punycode for international names; '*' only as the first label)"
            )
        domains.append(name)
    return tuple(domains)


def _ports(value: Any, where: str) -> tuple[int, ...]:
    ports = _or(value, [])
    if not isinstance(ports, list) or not all(_integer(p) and 0 < p < 65536 for p in ports):
        raise ConfigError(f"{where} must be a list of port numbers (1 to 65535)")
    return tuple(ports)


def _headers(value: Any, prefix: str, where: str) -> tuple[tuple[str, str], ...]:
    headers = _or(value, {})
    if not isinstance(headers, Mapping):
        raise ConfigError(f"{where} must be an object of header names to values")
    checked = []
    for name, template in headers.items():
        if not _TOKEN.match(name) or name.lower() in RESERVED_HEADERS:
            raise ConfigError(f"{where}: {name!r} is not a header pgqueue lets you set")
        if not isinstance(template, str):
            raise ConfigError(f"{where}.{name} must be a string")
        for var in _TEMPLATE.findall(template):
            if not var.startswith(prefix):
                raise ConfigError(
                    f"{where}.{name}: ${var} does not start with env_prefix {prefix!r}"
                )
        if "${{" in _TEMPLATE.sub("", template):
            raise ConfigError(f"{where}.{name}: a template must read '${{{{ env.NAME }}}}'")
        checked.append((name, template))
    return tuple(checked)
