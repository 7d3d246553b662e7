"""What httpx would put on the wire for one of our requests, without httpx's request models.

Building an ``httpx.Request`` (URL parsed twice, headers merged through ``httpx.Headers``,
cookies) and an ``httpx.Response`` cost about twice what aiohttp spends sending the request
(``bench/transport.py``). ``shape`` computes the same URL, header list and body that
``httpx.AsyncClient.build_request`` does, for the shapes our checks and provider calls use
(tests/health/test_wire.py compares the two), so ``transport.WireClient`` can hand them to
aiohttp directly. What stays httpx's: its default headers, its URL normalization (cached per
URL) and its query and form encoding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import httpx

Pairs = Sequence[tuple[str, str]]
Params = Mapping[str, Any] | tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Exchanged:
    """One answer: status, headers as ``dict(httpx.Headers)`` gives them (lower-cased names,
    repeated headers joined by ``", "``) and the body (decoded, as httpx decodes it)."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Shaped:
    url: str
    headers: list[tuple[str, str]]
    body: bytes | None


@lru_cache(maxsize=4096)
def _normal(url: str) -> tuple[str, str, bool]:
    """httpx's form of ``url``, its ``Host`` value, and whether params can simply follow it."""
    parsed = httpx.URL(url)
    plain = not parsed.query and not parsed.fragment and not parsed.is_relative_url
    return str(parsed), parsed.netloc.decode("ascii"), plain


def _with_params(url: str, params: Params | None) -> tuple[str, str]:
    normal, host, plain = _normal(url)
    if params is None:
        return normal, host
    if not plain:  # what build_request does (the URL's own query gives way to the params)
        merged = httpx.QueryParams().merge(params) if params else params
        return str(httpx.Request("GET", url, params=merged).url), host
    query = str(httpx.QueryParams(params))  # its grouping of repeated names and its encoding
    return (f"{normal}?{query}" if query else normal), host


def _form(data: Mapping[str, Any]) -> bytes:
    """``httpx._content.encode_urlencoded_data``: lists repeat the name."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, _primitive(v)) for v in values)
    return urlencode(pairs, doseq=True).encode("utf-8")


def _primitive(value: Any) -> str:
    """``httpx._utils.primitive_value_to_str``."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return ""
    return str(value)


def shape(
    defaults: Pairs,
    method: str,
    url: str,
    *,
    params: Params | None = None,
    headers: Pairs = (),
    data: Mapping[str, Any] | None = None,
    content: bytes | None = None,
) -> Shaped:
    """The URL, headers (in order) and body httpx sends for this request from a client whose
    default headers are ``defaults`` and whose cookie jar is empty."""
    full, host = _with_params(url, params)
    given = {name.lower() for name, _ in headers}
    merged = [(n, v) for n, v in defaults if n.lower() not in given]  # httpx: pop, then extend
    merged += headers
    body: bytes | None = None
    extra: tuple[tuple[str, str], ...] = ()
    if content is not None:  # httpx.encode_request: content first, then form data
        body = content
        extra = (("Content-Length", str(len(body))),) if body else ()
    elif data:
        body = _form(data)
        extra = (
            ("Content-Length", str(len(body))),
            ("Content-Type", "application/x-www-form-urlencoded"),
        )
    present = {name.lower() for name, _ in merged}
    merged += [(n, v) for n, v in extra if n.lower() not in present]
    auto = []
    if "host" not in present:
        auto.append(("Host", host))
    present.update(name.lower() for name, _ in extra)
    if method in ("POST", "PUT", "PATCH") and not present & {"content-length", "transfer-encoding"}:
        auto.append(("Content-Length", "0"))
    return Shaped(full, auto + merged, body or None)


def header_dict(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """``dict(httpx.Headers(raw))``: names lower-cased, repeated ones joined by ``", "``,
    decoded as ASCII, else UTF-8, else Latin-1 (httpx's choice for the whole set)."""
    encoding = "iso-8859-1"
    for candidate in ("ascii", "utf-8"):
        try:
            for name, value in raw:
                name.decode(candidate)
                value.decode(candidate)
        except UnicodeDecodeError:
            continue
        encoding = candidate
        break
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.lower().decode(encoding)
        text = value.decode(encoding)
        out[key] = f"{out[key]}, {text}" if key in out else text
    return out
