"""Remote originals over http(s): a guarded shared client, redirects hop by hop, hard caps."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from .. import __version__, cache, imaging, metrics, netguard, urls
from ..config import Config, SourcesConfig
from ..errors import (
    BadGateway,
    BadRequest,
    Forbidden,
    GatewayTimeout,
    PayloadTooLarge,
    UnsupportedMediaType,
    UpstreamMissing,
)
from ..urls import SourceRef
from ..workers import SingleFlight
from . import Original, Store

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SCHEMES = frozenset({"http", "https"})
CHUNK = 64 * 1024
# Connection pool: enough for a busy page of remote images, without letting one slow origin
# take every socket; DNS answers are reused briefly (only answers that passed the guard).
CONNECTIONS = 100
CONNECTIONS_PER_HOST = 8
DNS_TTL = 60
HEADERS = {"User-Agent": f"progimage/{__version__}", "Accept": "image/*, */*;q=0.5"}


class GuardedResolver(AbstractResolver):
    """Resolves through the default resolver, then refuses the name (403) if any address it
    resolves to is not public: the connection can only ever use addresses checked here."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        netguard.check_resolved(host, (result["host"] for result in results))
        return results

    async def close(self) -> None:
        await self._inner.close()


def guarded_resolver(config: Config) -> AbstractResolver:
    """The system resolver, guarded unless `sources.allow_private_networks` is true."""
    resolver = DefaultResolver()
    if config.sources.allow_private_networks:
        return resolver
    return GuardedResolver(resolver)


def client_session(config: Config, resolver: AbstractResolver) -> aiohttp.ClientSession:
    """The one client session for all remote sources (create it inside the running loop)."""
    connector = aiohttp.TCPConnector(
        limit=CONNECTIONS,
        limit_per_host=CONNECTIONS_PER_HOST,
        ttl_dns_cache=DNS_TTL,
        resolver=resolver,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=config.limits.fetch_timeout),
        headers=HEADERS,
        # Shared by every request of every client: one origin's cookies must never be sent
        # on someone else's fetch, and proxy variables must not route around the guard.
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


def remote_ref(url: object) -> SourceRef:
    """The SourceRef of a full http(s) URL given in a request body; 400 when it is not one."""
    try:
        parsed = URL(url) if isinstance(url, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in SCHEMES or not parsed.host:
        raise BadRequest('"url" must be an absolute http:// or https:// URL')
    # The same host rules as a URL inside a derived path (empty or over-long labels → 400).
    _, ref = urls.parse("/" + url)
    return ref


def check_hop(url: URL, sources: SourcesConfig) -> None:
    """The rules every request (first or redirected) must pass before it is sent: 403 if not.

    Host names are checked with the same parser (yarl) the client connects with, so the two
    can never disagree about which host is meant.
    """
    if url.scheme not in SCHEMES:
        raise Forbidden(f"'{url.scheme}:' sources are not allowed: only http and https")
    host = url.raw_host
    if not host:
        raise Forbidden("the source URL has no host")
    names = {host}
    with contextlib.suppress(UnicodeError):  # `xn--` labels that do not decode stay as they are
        names.add(url.host or host)  # the Unicode spelling of a punycode name
    if not any(netguard.host_allowed(name, sources.allowed_hosts) for name in names):
        raise Forbidden(f"'{host}' is not in sources.allowed_hosts")
    netguard.check_host(host, allow_private=sources.allow_private_networks)


@dataclass(frozen=True, slots=True)
class _Entry:
    original: Original
    expires: float  # time.monotonic()


class HttpSource:
    """Fetches remote originals under the rules of SPEC §6, each URL once at a time, and keeps
    recent ones in a bytes-bounded LRU for `cache.remote_ttl` seconds."""

    def __init__(
        self,
        config: Config,
        session: aiohttp.ClientSession,
        *,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.config = config
        self.session = session
        self._resolver = resolver  # closed with the source: the connector does not own it
        self.flights = SingleFlight()
        self.cache: cache.BytesLRU[_Entry] = cache.BytesLRU(
            config.cache.sources_mb * 1024 * 1024,
            lambda e: len(e.original.data) + len(e.original.preview or b"") + 512,
            metrics.cache_observer("sources"),
        )
        self.requests = 0  # HTTP requests sent upstream, redirect hops included
        # cache.sources_in_store: the store where every node keeps what it fetched (app.py).
        self.store: Store | None = None

    @classmethod
    def create(cls, config: Config) -> HttpSource:
        """A source with its own guarded session; call inside the running loop, then close()."""
        resolver = guarded_resolver(config)
        return cls(config, client_session(config, resolver), resolver=resolver)

    async def fetch(self, ref: SourceRef) -> Original:
        url = ref.value
        entry = self.cache.get(url)
        if entry is not None:
            if entry.expires > time.monotonic():
                return entry.original
            self.cache.discard_where(lambda key, _entry: key == url)
        original, _shared = await self.flights.do(url, lambda: self._fetch_and_keep(url))
        return original

    def keep_preview(self, url: str, identity: str, preview: bytes) -> None:
        """Keep a preview made from the cached original of `url` beside it, for later renders
        (only while that same original is cached: a refetched URL starts without one)."""
        entry = self.cache.get(url)
        if entry is None or entry.original.identity != identity or entry.original.preview:
            return
        original = replace(entry.original, preview=preview)
        self.cache.put(url, replace(entry, original=original))

    async def close(self) -> None:
        await self.session.close()
        if self._resolver is not None:
            await self._resolver.close()

    async def _fetch_and_keep(self, url: str) -> Original:
        original = await self._from_store(url)
        if original is None:
            original = await self.download(url)
            await self._keep_in_store(url, original)
        ttl = self.config.cache.remote_ttl
        if ttl > 0:
            self.cache.put(url, _Entry(original, time.monotonic() + ttl))
        return original

    async def _from_store(self, url: str) -> Original | None:
        """The copy some node kept in the store, if younger than cache.remote_ttl."""
        if self.store is None:
            return None
        try:
            blob = await self.store.get_blob(source_name(url))
            if blob is None:
                return None
            fetched, validator = float(blob.meta["fetched"]), unquote(blob.meta["validator"])
        except Exception as exc:  # the store is a cache here: any failure means "fetch it"
            log.warning("remote source not read from the store: %r", exc)
            return None
        if time.time() - fetched >= self.config.cache.remote_ttl:
            return None
        self._check_image(blob.data)  # this node's rules (allow_svg) may differ
        return Original(blob.data, identity=f"{url}\n{validator}", tag=cache.url_tag(url))

    async def _keep_in_store(self, url: str, original: Original) -> None:
        if self.store is None or not isinstance(original.data, bytes):
            return
        validator = original.identity.removeprefix(f"{url}\n")
        meta = {"validator": quote(validator, safe=""), "fetched": repr(time.time())}
        try:
            await self.store.put_blob(source_name(url), original.data, meta)
        except Exception as exc:  # best effort: the fetch itself succeeded
            log.warning("remote source not kept in the store: %r", exc)

    async def download(self, url: str) -> Original:
        """One uncached fetch: redirects, caps and the image check; errors carry their status."""
        try:
            start = URL(url)
        except ValueError as exc:  # yarl is stricter than urlsplit: bad port, IDNA label…
            raise BadRequest(f"'{url}': malformed source URL") from exc
        limit = self.config.limits.fetch_timeout
        try:
            async with asyncio.timeout(limit):  # the whole fetch, every hop and the body
                data, headers = await self._follow(start)
                validator = await _validator(headers, data)
        except TimeoutError as exc:
            raise GatewayTimeout(f"the source did not answer within {limit:g} s") from exc
        except (aiohttp.ClientError, UnicodeError) as exc:  # UnicodeError: a name IDNA refuses
            raise BadGateway(f"the source cannot be fetched ({type(exc).__name__})") from exc
        self._check_image(data)
        return Original(data, identity=f"{url}\n{validator}", tag=cache.url_tag(url))

    async def _follow(self, url: URL) -> tuple[bytes, Mapping[str, str]]:
        for _hop in range(MAX_REDIRECTS + 1):
            check_hop(url, self.config.sources)
            self.requests += 1
            async with self.session.get(url, allow_redirects=False) as response:
                if response.status in REDIRECT_STATUSES:
                    url = _next_hop(url, response)
                    continue
                if response.status in (404, 410):
                    raise UpstreamMissing(
                        f"the source answered {response.status} {response.reason}"
                    )
                if response.status != 200:
                    raise BadGateway(f"the source answered {response.status} {response.reason}")
                return await self._read_capped(response), response.headers
        raise BadGateway(f"the source redirected more than {MAX_REDIRECTS} times")

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        limit = self.config.limits.max_source_bytes
        too_large = PayloadTooLarge(f"the source is larger than {limit} bytes")
        if response.content_length is not None and response.content_length > limit:
            response.close()
            raise too_large
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            body += chunk
            if len(body) > limit:
                response.close()  # drop the connection: draining it would read the rest
                raise too_large
        return bytes(body)

    def _check_image(self, data: bytes) -> None:
        kind = imaging.sniff(data[: imaging.SNIFF_BYTES])
        if kind is None:
            raise UnsupportedMediaType("the source is not an image in a supported format")
        if kind == "svg" and not self.config.sources.allow_svg:
            raise UnsupportedMediaType("SVG input is disabled on this server")


def source_name(url: str) -> str:
    """The store name of a remote source: `sources/` + 128 bits of the URL's SHA-256."""
    return "sources/" + hashlib.sha256(url.encode()).hexdigest()[:32]


def _next_hop(url: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise BadGateway(f"the source answered {response.status} without a Location")
    try:
        return url.join(URL(location))
    except ValueError as exc:
        raise BadGateway("the source redirected to a malformed URL") from exc


async def _validator(headers: Mapping[str, str], data: bytes) -> str:
    """What tells two versions of a URL apart: ETag, else Last-Modified, else the bytes."""
    if etag := headers.get("ETag"):
        return f"etag:{etag}"
    if modified := headers.get("Last-Modified"):
        return f"last-modified:{modified}"
    digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())
    return f"sha256:{digest}"
