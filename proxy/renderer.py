"""From (Options, SourceRef) to encoded bytes: negotiation, ETag, cache, single-flight, pool."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import cache, pipeline, urls
from .config import Config
from .errors import Forbidden, NotFound
from .ops import Options
from .pipeline import Result
from .sources import Original
from .sources.local import LocalStore
from .urls import SourceRef
from .workers import RenderPool, SingleFlight

YEAR = 31_536_000


def negotiate(accept: str) -> str | None:
    """`fmt/auto`: AVIF if the client takes it, else WebP, else None (the source's rule)."""
    accepted = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    if "image/avif" in accepted:
        return "avif"
    if "image/webp" in accepted:
        return "webp"
    return None


@dataclass(slots=True)
class Rendition:
    """A derived image and everything its response headers need."""

    etag: str
    tag: str
    cache_control: str
    vary: bool
    result: Result | None = None
    from_cache: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def server_timing(self) -> str:
        parts = [f"{name};dur={ms:.1f}" for name, ms in self.timings.items()]
        parts.append(f'cache;desc="{"hit" if self.from_cache else "miss"}"')
        return ", ".join(parts)


class Renderer:
    def __init__(self, config: Config, store: LocalStore, pool: RenderPool) -> None:
        self.config = config
        self.store = store
        self.pool = pool
        self.flights = SingleFlight()
        self.results: cache.BytesLRU[Result] = cache.BytesLRU(
            config.cache.memory_mb * 1024 * 1024, lambda r: len(r.body) + 512
        )
        self.renders = 0  # renders actually run by libvips in this process

    def prepare(self, options: Options, ref: SourceRef, accept: str) -> Rendition:
        """Everything known before touching the original: for stored ids, the ETag itself."""
        now = time.time()
        if options.expires is not None and now >= options.expires:
            raise Forbidden("this URL has expired")
        requested = options.format or self.config.output.format
        vary = requested == "auto"
        negotiated = negotiate(accept) if vary else requested
        if not ref.is_stored:
            raise NotFound("remote sources are not enabled on this server")
        if not self.store.exists(ref.value):
            raise NotFound(f"no image with id {ref.value}")
        canonical = urls.build(options, ref)
        etag = cache.result_key(canonical, ref.value, f"auto:{negotiated}" if vary else negotiated)
        max_age = YEAR
        control = f"public, max-age={YEAR}, immutable"
        if options.expires is not None:
            max_age = min(max_age, int(options.expires - now))
            control = f"public, max-age={max_age}"
        return Rendition(etag=etag, tag=ref.value, cache_control=control, vary=vary)

    async def render(
        self, rendition: Rendition, options: Options, ref: SourceRef, requested: str | None
    ) -> Rendition:
        """Fill `rendition.result`: from the cache, a render in flight, or a new render."""
        hit = self.results.get(rendition.etag)
        if hit is not None:
            rendition.result, rendition.from_cache = hit, True
            return rendition

        async def produce() -> tuple[Result, dict[str, float]]:
            started = time.perf_counter()
            original = await self.store.fetch(ref)
            fetched = time.perf_counter()
            result = await self.pool.run(self._render_sync, original, options, requested)
            self.results.put(rendition.etag, result)
            timings = {
                "fetch": (fetched - started) * 1000,
                "queue": max(
                    0.0,
                    (time.perf_counter() - fetched) * 1000 - result.process_ms - result.encode_ms,
                ),
                "render": result.process_ms,
                "encode": result.encode_ms,
            }
            return result, timings

        (result, timings), _shared = await self.flights.do(rendition.etag, produce)
        rendition.result = result
        rendition.timings.update(timings)
        return rendition

    def requested_format(self, options: Options, accept: str) -> str | None:
        requested = options.format or self.config.output.format
        return negotiate(accept) if requested == "auto" else requested

    def _render_sync(self, original: Original, options: Options, requested: str | None) -> Result:
        self.renders += 1
        return pipeline.render(
            original.data,
            options,
            requested_format=requested,
            quality=quality_table(self.config),
            max_pixels=self.config.limits.max_pixels,
            allow_svg=self.config.sources.allow_svg,
        )


def quality_table(config: Config) -> dict[str, int]:
    q = config.output.quality
    return {"jpeg": q.jpeg, "webp": q.webp, "avif": q.avif}
