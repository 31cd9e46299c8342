"""From (Options, SourceRef) to encoded bytes: negotiation, ETag, cache, single-flight, pool."""

from __future__ import annotations

import asyncio
import dataclasses
import decimal
import hashlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cachetools import LRUCache

from . import cache, faces, metrics, ops, overlays, pipeline, urls
from .config import Config
from .errors import BadRequest, Forbidden, NotFound
from .ops import Options
from .pipeline import Result
from .results import BucketResults, ResultStore
from .sources import Original, Source, Store
from .sources.http import HttpSource
from .urls import SourceRef
from .workers import RenderPool, SingleFlight

YEAR = 31_536_000
PLANS_KEPT = 4096  # request plans remembered (Renderer._plan), a few KB each at most
PLAN_TEXT_MAX = 2048  # characters of headers and canonical path a remembered plan may hold
FACES_KEPT = 100_000  # originals whose faces are remembered: a few dozen bytes each


def negotiate(accept: str, formats: tuple[str, ...] = ("avif", "webp")) -> str | None:
    """`fmt/auto`: the first of `formats` (output.auto_formats) the client takes, else None
    (the source's rule)."""
    accepted = set()
    for part in accept.split(","):
        media, *params = (piece.strip().lower() for piece in part.split(";"))
        refused = any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
        if media and not refused:
            accepted.add(media)
    return next((fmt for fmt in formats if ops.MIME_TYPES.get(fmt) in accepted), None)


DPR_HINTS = ("Sec-CH-DPR", "DPR")


def client_dpr(headers: Mapping[str, str]) -> float:
    """`dpr/auto`: the client hint, clamped to 1–4 and rounded half up to one decimal (as
    nginx.conf's map rounds it); 1 when absent or malformed."""
    for name in DPR_HINTS:
        text = headers.get(name, "").strip()
        if text:
            try:
                value = decimal.Decimal(text)
            except decimal.InvalidOperation:
                return 1.0
            if not value.is_finite():
                return 1.0
            value = min(max(value, decimal.Decimal(1)), decimal.Decimal(4))
            return float(value.quantize(decimal.Decimal("0.1"), decimal.ROUND_HALF_UP))
    return 1.0


@dataclass(slots=True)
class Rendition:
    """A derived image and everything its response headers need.

    `options` has every request-dependent setting resolved (`dpr/auto`), and `requested` is
    the negotiated output format: rendering needs nothing else from the request.
    """

    options: Options
    ref: SourceRef
    requested: str | None
    etag: str
    tag: str
    cache_control: str
    vary: tuple[str, ...] = ()
    client_hints: bool = False  # `dpr/auto`: ask the browser for its DPR (Accept-CH)
    canonical: str = ""
    variant: str | None = None  # the negotiated format, as it enters the ETag
    original: Original | None = None
    result: Result | None = None
    from_cache: bool = False
    from_store: bool = False  # read back from the results store, not rendered
    fallback: str | None = None  # `not-found` / `upstream-error`: the fallback image stands in
    timings: dict[str, float] = field(default_factory=dict)

    def server_timing(self) -> str:
        parts = [f"{name};dur={ms:.1f}" for name, ms in self.timings.items()]
        source = "hit" if self.from_cache else "store" if self.from_store else "miss"
        parts.append(f'cache;desc="{source}"')
        return ", ".join(parts)

    def headers(self) -> dict[str, str]:
        """The headers a 200 and a 304 share."""
        headers = {
            "ETag": f'"{self.etag}"',
            "Cache-Control": self.cache_control,
            "Cache-Tag": self.tag,
            "Surrogate-Key": self.tag,
        }
        if self.vary:
            headers["Vary"] = ", ".join(self.vary)
        if self.client_hints:
            headers["Accept-CH"] = ", ".join(DPR_HINTS)
        if self.fallback:
            headers["ProgImage-Fallback"] = self.fallback
        return headers


@dataclass(frozen=True, slots=True)
class Plan:
    """The part of a Rendition that follows from the request alone (Renderer._plan)."""

    options: Options  # `dpr/auto` resolved
    requested: str | None
    vary: tuple[str, ...]
    variant: str | None
    canonical: str
    etag: str  # "" for a remote source, whose ETag waits for its fetch
    tag: str
    max_age: int
    cache_control: str


class Renderer:
    def __init__(
        self,
        config: Config,
        store: Store,
        pool: RenderPool,
        remote: Source | None = None,
        *,
        results_store: ResultStore | BucketResults | None = None,
        sources: Mapping[str, Source] | None = None,
    ) -> None:
        self.config = config
        # `cache.results_in_store`: results kept on disk, or in the bucket with backend s3
        self.results_store = results_store
        # Sources by SourceRef kind beyond stored ids: "url" (remote), "s3", "local".
        self.sources: dict[str, Source] = dict(sources or {})
        if remote is not None:
            self.sources.setdefault("url", remote)
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
        # Faces found per original identity (a content hash or a versioned URL): detected once.
        self.faces: LRUCache[str, tuple[faces.Box, ...]] = LRUCache(FACES_KEPT)
        self.detections = 0  # face detections actually run in this process
        self._plans: LRUCache[tuple, Plan] = LRUCache(PLANS_KEPT)
        self._files: dict[str, str] = {}  # fallback image files: path -> content identity
        # What shapes the bytes besides the URL: part of every ETag (cache.result_key).
        self.encoder = encoder_settings(config)
        self.settings = repr((self.encoder, config.output.metadata))

    async def prepare(
        self, options: Options, ref: SourceRef, request_headers: Mapping[str, str]
    ) -> Rendition:
        """Everything before pixels: expiry, negotiation, the ETag (for a remote source after
        fetching it, since the ETag names the upstream version)."""
        now = time.time()
        if options.expires is not None and now >= options.expires:
            raise Forbidden("this URL has expired")
        plan = self._plan(options, ref, request_headers)
        await self._check_overlay(plan.options)
        # Checked on every request, not planned: a DELETE through any worker process shows
        # at once in all of them.
        if ref.kind == "id" and not await self.store.exists(ref.value):
            raise NotFound(f"no image with id {ref.value}")
        control = plan.cache_control
        if options.expires is not None:
            control = f"public, max-age={min(plan.max_age, int(options.expires - now))}"
        rendition = Rendition(
            plan.options, ref, plan.requested, plan.etag, plan.tag, control, plan.vary,
            DPR_HINTS[0] in plan.vary, canonical=plan.canonical, variant=plan.variant,
        )  # fmt: skip
        if plan.etag:
            return rendition
        source = self.source_for(ref)
        started = time.perf_counter()
        rendition.original = await source.fetch(ref)
        elapsed = time.perf_counter() - started
        metrics.FETCH_SECONDS.labels("remote" if ref.kind == "url" else ref.kind).observe(elapsed)
        rendition.timings["fetch"] = elapsed * 1000
        rendition.etag = self._etag(plan, rendition.original.identity)
        return rendition

    def _plan(self, options: Options, ref: SourceRef, request_headers: Mapping[str, str]) -> Plan:
        """What `prepare` decides without I/O: a pure function of the options, the source and
        the request headers negotiation reads, so it is remembered: a repeated request builds
        no canonical path and hashes nothing."""
        requested = options.format or self.config.output.format
        accept = request_headers.get("Accept", "") if requested == "auto" else None
        hints = None
        if options.dpr == "auto":
            hints = tuple(request_headers.get(name, "") for name in DPR_HINTS)
        # Options compare 1 and 1.0 as equal, but a crop's 1 is a pixel and its 1.0 the whole
        # side: the key tells them apart. The detector enters ETags.
        crop_kinds = tuple(map(type, options.crop)) if options.crop else None
        key = (options, crop_kinds, ref, accept, hints, faces.DETECTOR)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        resolved, negotiated, vary, variant = self.resolve(options, request_headers)
        canonical = urls.build(resolved, ref)
        if ref.kind == "id":
            identity, tag, max_age = ref.value, ref.value, YEAR
        elif ref.kind == "file":  # the fallback image from a file (fallback.image)
            identity, tag, max_age = self._file_identity(ref.value), "fallback", YEAR
        else:  # the ETag names the upstream version: known once fetched
            identity, tag, max_age = None, cache.url_tag(ref.value), self.config.cache.remote_ttl
        control = f"public, max-age={max_age}" + (", immutable" if ref.is_stored else "")
        plan = Plan(resolved, negotiated, vary, variant, canonical, "", tag, max_age, control)
        if identity is not None:
            plan = dataclasses.replace(plan, etag=self._etag(plan, identity))
        # Browsers' headers and most URLs are short; long ones are answered, not remembered,
        # so the memory stays bounded (PLANS_KEPT entries of a few KB at most).
        if len(accept or "") + sum(map(len, hints or ())) + len(canonical) <= PLAN_TEXT_MAX:
            self._plans[key] = plan
        return plan

    def _etag(self, plan: Plan, identity: str) -> str:
        if ops.uses_faces(plan.options):  # another detector may find other faces
            identity = f"{identity}|{faces.DETECTOR}"
        return cache.result_key(plan.canonical, identity, plan.variant, self.settings)

    def source_for(self, ref: SourceRef) -> Source:
        """Where an original that is not a stored id comes from."""
        source = self.sources.get(ref.kind)
        if source is None:
            raise NotFound(f"{ref.kind} sources are not enabled on this server")
        return source

    def resolve(
        self, options: Options, request_headers: Mapping[str, str]
    ) -> tuple[Options, str | None, tuple[str, ...], str | None]:
        """What the request decides: (options with `dpr/auto` resolved, the output format,
        the headers the response varies on, the format as it enters the ETag)."""
        if (
            options.text is not None
            and not self.config.signing.keys
            and not self.config.overlays.allow_unsigned_text
        ):
            raise Forbidden(
                "'text': text on unsigned URLs is off (set signing.key, or "
                "overlays.allow_unsigned_text)"
            )
        if options.text is not None and (lacking := overlays.missing(options.text[0])):
            shown = ", ".join(f"U+{ord(c):04X}" for c in lacking[:8])
            raise BadRequest(f"'text': the font has no glyph for {shown}")
        vary: tuple[str, ...] = ()
        requested = options.format or self.config.output.format
        variant = requested
        if requested == "auto":
            vary += ("Accept",)
            requested = negotiate(
                request_headers.get("Accept", ""), self.config.output.auto_formats
            )
            variant = f"auto:{requested}"
        if options.dpr == "auto":
            vary += DPR_HINTS
            options = self._with_dpr(options, client_dpr(request_headers))
        return options, requested, vary, variant

    async def _check_overlay(self, options: Options) -> None:
        if options.watermark is not None and not await self.store.exists(options.watermark[0]):
            raise BadRequest(f"'watermark/{options.watermark[0]}': no stored image with this id")

    async def overlay(self, options: Options, *, checked: bool = False) -> pipeline.Overlay | None:
        """The watermark's original, for the render (its id is a content hash: never stale).
        `checked`: `prepare` has just seen that it exists."""
        if options.watermark is None:
            return None
        image_id = options.watermark[0]
        decoded = pipeline.decoded_overlay(image_id)
        if decoded is not None:  # its bytes are not needed, only that it was not deleted
            if not checked:
                await self._check_overlay(options)
            return pipeline.Overlay(image_id, None, decoded)
        try:
            original = await self.store.fetch(SourceRef("id", image_id))
            return pipeline.Overlay(original.identity, original.data)
        except NotFound:
            raise BadRequest(
                f"'watermark/{options.watermark[0]}': no stored image with this id"
            ) from None

    def _with_dpr(self, options: Options, dpr: float) -> Options:
        """The client's ratio, lowered (to a tenth) where the box would pass the limit."""
        limit = self.config.limits.max_output_dimension
        longest = max(v or 0 for v in (options.width, options.height))
        if longest and longest * dpr > limit:
            dpr = max(1.0, math.floor(limit / longest * 10) / 10)
        return urls.normalise(dataclasses.replace(options, dpr=dpr))

    def _file_identity(self, path: str) -> str:
        identity = self._files.get(path)
        if identity is None:
            raise NotFound("the fallback image file cannot be read")
        return identity

    async def load_fallback(self) -> None:
        """Hash the fallback image file once at start: its content names its ETag."""
        image = self.config.fallback.image
        if image is None or urls.ID_RE.match(image):
            return
        data = await asyncio.to_thread(Path(image).read_bytes)
        self._files[image] = "file:" + hashlib.sha256(data).hexdigest()[:32]

    def fallback_ref(self) -> SourceRef | None:
        image = self.config.fallback.image
        if image is None:
            return None
        return SourceRef("id" if urls.ID_RE.match(image) else "file", image)

    async def render(self, rendition: Rendition) -> Rendition:
        """Fill `rendition.result`: from the cache, a render in flight, or a new render."""
        options, ref, requested = rendition.options, rendition.ref, rendition.requested
        etag = rendition.etag
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
            if original is None and ref.kind == "file":
                original = Original(Path(ref.value), etag, "fallback")
            elif original is None:
                original = await self.store.fetch(ref)
                timings["fetch"] = (time.perf_counter() - started) * 1000
            overlay = await self.overlay(options, checked=True)
            fetched = time.perf_counter()
            found = self.faces.get(original.identity) if ops.uses_faces(options) else None
            result, made = await self.pool.run(
                self._render_sync, original, options, requested, ref.kind == "url", overlay, found
            )
            if result.faces is not None and found is None:
                self.detections += 1
                self.faces[original.identity] = result.faces
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

    async def faces_of(self, ref: SourceRef) -> tuple[faces.Box, ...]:
        """The faces of a stored original, in upright source pixels (for /images/{id}/info)."""
        known = self.faces.get(ref.value)  # a stored original's identity is its id
        if known is not None:
            return known
        original = await self.store.fetch(ref)
        found = self.faces.get(original.identity)
        if found is None:
            found = tuple(await self.pool.run(self._find_sync, original))
            self.detections += 1
            self.faces[original.identity] = found
        return found

    def _find_sync(self, original: Original) -> list[faces.Box]:
        source, header, _ = pipeline.prepare(
            original.data,
            Options(),
            requested_format=None,
            quality=self.encoder["quality"],
            max_pixels=self.config.limits.max_pixels,
            allow_svg=self.config.sources.allow_svg,
            known=original.known,  # a sandboxed original's faces come from its preview
        )
        return pipeline.find_faces(source, header, original.preview)

    def _render_sync(
        self,
        original: Original,
        options: Options,
        requested: str | None,
        remote: bool,
        overlay: pipeline.Overlay | None = None,
        found: tuple[faces.Box, ...] | None = None,
    ) -> tuple[Result, bytes | None]:
        """The render, and the preview it made of a remote original that had none (stored
        originals got theirs at upload)."""
        self.renders += 1
        started = time.perf_counter()
        planned = pipeline.prepare(
            original.data,
            options,
            requested_format=requested,
            **self.encoder,
            max_pixels=self.config.limits.max_pixels,
            allow_svg=self.config.sources.allow_svg,
            metadata=self.config.output.metadata,
            overlay=overlay,
            known=original.known,
        )
        made = pipeline.make_preview(planned) if remote and original.preview is None else None
        result = pipeline.render_planned(
            planned, preview=original.preview or made, started=started, found=found
        )
        return result, made


def encoder_settings(config: Config) -> dict[str, dict]:
    """output.quality, output.effort and output.chroma as the pipeline takes them (format ->
    value), keyword by keyword: what encodes the bytes besides the URL."""
    output = config.output
    return {
        "quality": dataclasses.asdict(output.quality),
        "effort": dataclasses.asdict(output.effort),
        "chroma": dataclasses.asdict(output.chroma),
    }


def quality_table(config: Config) -> dict[str, int]:
    return encoder_settings(config)["quality"]
