"""From (Options, SourceRef) to encoded bytes: negotiation, ETag, cache, single-flight, pool."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import cache, metrics, pipeline, urls
from .config import Config
from .errors import Forbidden, NotFound
from .ops import Options
from .pipeline import Result
from .results import ResultStore
from .sources import Original, Source, Store
from .sources.http import HttpSource
from .urls import SourceRef
from .workers import RenderPool, SingleFlight

YEAR = 31_536_000


def negotiate(accept: str) -> str | None:
    """`fmt/auto`: AVIF if the client takes it, else WebP, else None (the source's rule)."""
    accepted = set()
    for part in accept.split(","):
        media, *params = (piece.strip().lower() for piece in part.split(";"))
        refused = any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
        if media and not refused:
            accepted.add(media)
    if "image/avif" in accepted:
        return "avif"
    if "image/webp" in accepted:
        return "webp"
    return None


@dataclass(slots=True)
class Rendition:
    """A derived image and everything its response headers need.

    For remote sources `etag` stays None until `Renderer.identify` has fetched the original,
    because it names the upstream validator.
    """

    etag: str | None
    tag: str
    cache_control: str
    vary: bool
    canonical: str = ""
    variant: str | None = None  # the negotiated format, as it enters the ETag
    original: Original | None = None
    result: Result | None = None
    from_cache: bool = False
    from_store: bool = False  # read back from the results store, not rendered
    timings: dict[str, float] = field(default_factory=dict)

    def server_timing(self) -> str:
        parts = [f"{name};dur={ms:.1f}" for name, ms in self.timings.items()]
        source = "hit" if self.from_cache else "store" if self.from_store else "miss"
        parts.append(f'cache;desc="{source}"')
        return ", ".join(parts)


class Renderer:
    def __init__(
        self,
        config: Config,
        store: Store,
        pool: RenderPool,
        remote: Source | None = None,
        *,
        results_store: ResultStore | None = None,
    ) -> None:
        self.config = config
        self.results_store = results_store  # `cache.results_in_store`: results kept on disk
        self.store = store
        self.pool = pool
        self.remote = remote
        self.flights = SingleFlight()
        self.results: cache.BytesLRU[Result] = cache.BytesLRU(
            config.cache.memory_mb * 1024 * 1024,
            lambda r: len(r.body) + 512,
            metrics.cache_observer("results"),
        )
        self.renders = 0  # renders actually run by libvips in this process

    async def prepare(self, options: Options, ref: SourceRef, accept: str) -> Rendition:
        """Everything known before touching the original: for stored ids, the ETag itself."""
        now = time.time()
        if options.expires is not None and now >= options.expires:
            raise Forbidden("this URL has expired")
        requested = options.format or self.config.output.format
        vary = requested == "auto"
        negotiated = negotiate(accept) if vary else requested
        variant = f"auto:{negotiated}" if vary else negotiated
        canonical = urls.build(options, ref)
        if ref.is_stored:
            if not await self.store.exists(ref.value):
                raise NotFound(f"no image with id {ref.value}")
            etag = cache.result_key(canonical, ref.value, variant)
            tag, max_age = ref.value, YEAR
        else:
            if self.remote is None:
                raise NotFound("remote sources are not enabled on this server")
            etag, tag, max_age = None, cache.url_tag(ref.value), self.config.cache.remote_ttl
        control = f"public, max-age={max_age}" + (", immutable" if ref.is_stored else "")
        if options.expires is not None:
            control = f"public, max-age={min(max_age, int(options.expires - now))}"
        return Rendition(etag, tag, control, vary, canonical=canonical, variant=variant)

    async def identify(self, rendition: Rendition, ref: SourceRef) -> None:
        """Remote sources: fetch the original (from the source cache when fresh) and derive the
        ETag from its identity, so If-None-Match can be answered before any render."""
        if rendition.etag is not None:
            return
        assert self.remote is not None  # prepare() refused URL sources without one
        started = time.perf_counter()
        rendition.original = await self.remote.fetch(ref)
        elapsed = time.perf_counter() - started
        metrics.FETCH_SECONDS.labels("remote").observe(elapsed)
        rendition.timings["fetch"] = elapsed * 1000
        rendition.etag = cache.result_key(
            rendition.canonical, rendition.original.identity, rendition.variant
        )

    async def render(
        self, rendition: Rendition, options: Options, ref: SourceRef, requested: str | None
    ) -> Rendition:
        """Fill `rendition.result`: from the cache, a render in flight, or a new render."""
        await self.identify(rendition, ref)
        etag = rendition.etag
        assert etag is not None
        hit = self.results.get(etag)
        if hit is not None:
            rendition.result, rendition.from_cache = hit, True
            return rendition
        fetched_original = rendition.original

        async def produce() -> tuple[Result, dict[str, float]]:
            started = time.perf_counter()
            timings: dict[str, float] = {}
            if self.results_store is not None:
                stored = await self.results_store.get(etag)
                if stored is not None:
                    self.results.put(etag, stored)
                    return stored, {"store": (time.perf_counter() - started) * 1000}
            original = fetched_original
            if original is None:
                original = await self.store.fetch(ref)
                timings["fetch"] = (time.perf_counter() - started) * 1000
            fetched = time.perf_counter()
            result, made = await self.pool.run(
                self._render_sync, original, options, requested, not ref.is_stored
            )
            if made is not None and isinstance(self.remote, HttpSource):
                self.remote.keep_preview(ref.value, original.identity, made)
            self.results.put(etag, result)
            if self.results_store is not None:
                await self.results_store.put(etag, result)
            metrics.RENDER_SECONDS.labels(metrics.render_family(options.mode)).observe(
                (result.process_ms + result.encode_ms) / 1000
            )
            timings["queue"] = max(
                0.0, (time.perf_counter() - fetched) * 1000 - result.process_ms - result.encode_ms
            )
            timings["render"] = result.process_ms
            timings["encode"] = result.encode_ms
            return result, timings

        (result, timings), _shared = await self.flights.do(etag, produce)
        rendition.result = result
        rendition.from_store = "store" in timings
        rendition.timings.update(timings)
        return rendition

    def requested_format(self, options: Options, accept: str) -> str | None:
        requested = options.format or self.config.output.format
        return negotiate(accept) if requested == "auto" else requested

    def _render_sync(
        self, original: Original, options: Options, requested: str | None, remote: bool
    ) -> tuple[Result, bytes | None]:
        """The render, and the preview it made of a remote original that had none (stored
        originals got theirs at upload)."""
        self.renders += 1
        started = time.perf_counter()
        planned = pipeline.prepare(
            original.data,
            options,
            requested_format=requested,
            quality=quality_table(self.config),
            max_pixels=self.config.limits.max_pixels,
            allow_svg=self.config.sources.allow_svg,
        )
        made = pipeline.make_preview(planned) if remote and original.preview is None else None
        result = pipeline.render_planned(planned, preview=original.preview or made, started=started)
        return result, made


def quality_table(config: Config) -> dict[str, int]:
    q = config.output.quality
    return {"jpeg": q.jpeg, "webp": q.webp, "avif": q.avif}
