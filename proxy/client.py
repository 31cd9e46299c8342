"""A Python client of ProgImage: store, list, describe and delete images, and link to them.

    from proxy.client import Client

    with Client("http://127.0.0.1:8080", token="…", key="…") as images:
        photo = images.upload("photo.jpg")          # a path, bytes, or images.import_url(…)
        images.url(photo.id, resize="300x200", fmt="webp")
        for image in images.list():                 # every page, in id order
            ...

`AsyncClient` has the same methods as coroutines (`list` is an async iterator). Both speak
HTTP through httpx; they retry 503 and other 5xx answers, and lost connections, with
exponential backoff that honours `Retry-After` (every request of the storage API is
idempotent: an id is the hash of the bytes). Not retried: 501, 505, 507 (disk full) and the
service's own 502 about a remote source. Any other failure raises `ProgImageError`, which
carries the service's problem+json.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiofiles
import httpx

from . import links

DEFAULT_SERVER = "http://127.0.0.1:8080"
CHUNK = 1 << 16
# Past this a Retry-After is someone else's schedule, not a pause worth keeping a user for.
MAX_PAUSE = 30.0

Source = bytes | str | os.PathLike[str]


class ProgImageError(Exception):
    """A request failed: `status` (0 when the service could not be reached) and its problem."""

    def __init__(self, status: int, detail: str, problem: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail
        self.problem = problem or {}


@dataclass(frozen=True)
class Image:
    """A stored original, as the service describes it."""

    id: str
    format: str
    width: int
    height: int
    size: int
    #: True when this request stored it; False when those bytes were stored already.
    new: bool = False
    #: Seconds since the epoch when it was stored (only in listings).
    created: float | None = None

    @property
    def url(self) -> str:
        return f"/images/{self.id}"

    @classmethod
    def from_json(cls, body: dict[str, Any], *, new: bool = False) -> Image:
        return cls(
            id=body["id"], format=body["format"], width=body["width"], height=body["height"],
            size=body["size"], new=new, created=body.get("created"),
        )  # fmt: skip


@dataclass(frozen=True)
class Job:
    """An import or derive-and-store running in the background (`Prefer: respond-async`)."""

    id: str
    status: str  # pending | done | failed
    image: Image | None = None
    error: dict[str, Any] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"/jobs/{self.id}"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Job:
        image = body.get("image")
        return cls(
            id=body["job"], status=body["status"],
            image=Image.from_json(image) if image else None, error=body.get("error"),
        )  # fmt: skip


def image_id(data: bytes) -> str:
    """The id the service gives `data`: the first 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(data).hexdigest()[:32]


def file_id(path: str | os.PathLike[str]) -> str:
    """The id of the file at `path`, read in chunks (blocking: call it in a thread)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class _Call:
    """One request of the API, independent of sync or async sending."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class _Base:
    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        *,
        token: str | None = None,
        key: str | Sequence[str] | None = None,
        url_base: str | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        """`server` is where requests go; `url_base` prefixes built URLs (default `server`:
        give the CDN's origin here). `token` authorises writes, `key` signs URLs and derive
        paths. A request is tried `retries` more times after a 5xx or a lost connection."""
        self.server = server.rstrip("/")
        self.url_base = (self.server if url_base is None else url_base).rstrip("/")
        self.key = key
        self.retries = retries
        self.backoff = backoff
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout

    # --- URLs: pure, no request

    def url(self, source: str, **operations: object) -> str:
        """The (signed, with `key`) URL of `source` with `operations`, as `proxy.links.url`."""
        return links.url(source, key=self.key, base=self.url_base, **operations)

    def srcset(self, source: str, widths: Sequence[int], **operations: object) -> str:
        """A `srcset` of `source` at `widths`, as `proxy.links.srcset`."""
        return links.srcset(source, widths, key=self.key, base=self.url_base, **operations)

    # --- what each method asks and how its answer reads

    def _derive_call(self, source: str, operations: dict[str, object], background: bool) -> _Call:
        path = links.url(source, key=self.key, **operations)
        return _Call("POST", "/images", json={"from": path}, headers=_prefer(background))

    def _pause(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before trying again, or None when this answer is final."""
        if attempt >= self.retries:
            return None
        if response is not None and not _transient(response):
            return None
        after = _retry_after(response) if response is not None else None
        if after is not None:
            return after
        return self.backoff * 2**attempt * (0.5 + random.random() / 2)


def _prefer(background: bool) -> dict[str, str]:
    return {"Prefer": "respond-async"} if background else {}


def _transient(response: httpx.Response) -> bool:
    """A 5xx worth trying again: not one that says the request can never work here."""
    status = response.status_code
    if status < 500 or status in (501, 505, 507):
        return False
    # The service's own 502 is its verdict on a remote source (say, a 404 there); a 502
    # from a gateway in front of it comes without problem+json and may pass.
    problem = response.headers.get("Content-Type", "").startswith("application/problem+json")
    return not (status == 502 and problem)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(MAX_PAUSE, float(value))
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(MAX_PAUSE, max(0.0, when - time.time()))


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code < 400:
        return response
    problem: dict[str, Any] = {}
    if response.headers.get("Content-Type", "").startswith("application/problem+json"):
        try:
            problem = response.json()
        except ValueError:
            problem = {}
    detail = problem.get("detail") or response.reason_phrase or "request failed"
    raise ProgImageError(response.status_code, str(detail), problem)


def _stored(response: httpx.Response) -> Image | Job:
    body = response.json()
    if response.status_code == 202:
        return Job.from_json(body)
    return Image.from_json(body, new=response.status_code == 201)


def _unreachable(server: str, exc: httpx.TransportError) -> ProgImageError:
    return ProgImageError(0, f"cannot reach {server}: {exc or type(exc).__name__}")


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


async def _file_chunks_async(path: Path) -> AsyncIterator[bytes]:
    async with aiofiles.open(path, "rb") as fh:
        while chunk := await fh.read(CHUNK):
            yield chunk


class Client(_Base):
    """The blocking client. Use it as a context manager, or call `close()`."""

    def __init__(self, server: str = DEFAULT_SERVER, **options: Any) -> None:
        super().__init__(server, **options)
        self._http = httpx.Client(base_url=self.server, headers=self._headers,
                                  timeout=self._timeout)  # fmt: skip

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call, body: bytes | Path | None = None) -> httpx.Response:
        attempt = 0
        while True:
            headers = dict(call.headers)
            content: Any = None
            if isinstance(body, Path):  # streamed, and opened anew for every attempt
                headers["Content-Length"] = str(body.stat().st_size)
                content = _file_chunks(body)
            elif body is not None:
                content = body
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params,
                    headers=headers, content=content,
                )  # fmt: skip
            except httpx.TransportError as exc:
                pause = self._pause(attempt, None)
                if pause is None:
                    raise _unreachable(self.server, exc) from exc
            else:
                pause = self._pause(attempt, response)
                if pause is None:
                    return _checked(response)
            time.sleep(pause)
            attempt += 1

    def upload(self, source: Source) -> Image:
        """Store bytes, or the file at a path (streamed). `new` says whether it was stored now."""
        body = source if isinstance(source, bytes) else Path(source)
        result = _stored(self._send(_Call("PUT", "/images"), body))
        assert isinstance(result, Image)
        return result

    def import_url(self, url: str, *, background: bool = False) -> Image | Job:
        """Store the image at the remote `url`; with `background`, a Job to `wait` for."""
        call = _Call("POST", "/images", json={"url": url}, headers=_prefer(background))
        return _stored(self._send(call))

    def derive(self, source: str, *, background: bool = False, **operations: object) -> Image | Job:
        """Store the result of `operations` on `source` as a new original (signed with `key`)."""
        return _stored(self._send(self._derive_call(source, operations, background)))

    def job(self, job: str | Job) -> Job:
        """The state of a background job now."""
        job_id = job.id if isinstance(job, Job) else job
        return Job.from_json(self._send(_Call("GET", f"/jobs/{job_id}")).json())

    def wait(self, job: str | Job, *, within: float = 300.0, poll: float = 0.2) -> Image:
        """Poll `job` until it is done (its Image) or failed (raises its problem)."""
        deadline = time.monotonic() + within
        while True:
            state = self.job(job)
            if state.status != "pending":
                return _finished(state)
            if time.monotonic() > deadline:
                raise ProgImageError(0, f"job {state.id} still pending after {within}s")
            time.sleep(poll)

    def health(self) -> dict[str, Any]:
        """`{"status": "ok"}` from a service that is up; ProgImageError otherwise."""
        return self._send(_Call("GET", "/health")).json()

    def exists(self, image: str) -> bool:
        """Whether the service has the original with this id (one HEAD request)."""
        try:
            self._send(_Call("HEAD", f"/images/{image}"))
        except ProgImageError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def info(self, image: str) -> dict[str, Any]:
        """Facts about a stored original: format, size, bands, alpha, pages, perceptual hash."""
        return self._send(_Call("GET", f"/images/{image}/info")).json()

    def list(self, *, page_size: int = 100) -> Iterator[Image]:
        """Every stored original in id order, fetched `page_size` at a time."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size, **({"after": after} if after else {})}
            page = self._send(_Call("GET", "/images", params=params)).json()
            yield from (Image.from_json(item) for item in page["images"])
            after = page["next"]
            if not after:
                return

    def delete(self, image: str) -> None:
        """Delete an original; ProgImageError 404 when there is no such id."""
        self._send(_Call("DELETE", f"/images/{image}"))

    def original(self, image: str) -> bytes:
        """The exact bytes stored under this id."""
        return self._send(_Call("GET", f"/images/{image}")).content

    def get(self, source: str, **operations: object) -> bytes:
        """The bytes of `source` with `operations` (the URL `url` builds), from the service."""
        path = links.url(source, key=self.key, **operations)
        return self._send(_Call("GET", path)).content


class AsyncClient(_Base):
    """The asyncio client: the methods of `Client` as coroutines. `async with` it."""

    def __init__(self, server: str = DEFAULT_SERVER, **options: Any) -> None:
        super().__init__(server, **options)
        self._http = httpx.AsyncClient(base_url=self.server, headers=self._headers,
                                       timeout=self._timeout)  # fmt: skip

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call, body: bytes | Path | None = None) -> httpx.Response:
        attempt = 0
        while True:
            headers = dict(call.headers)
            content: Any = None
            if isinstance(body, Path):
                size = (await asyncio.to_thread(body.stat)).st_size
                headers["Content-Length"] = str(size)
                content = _file_chunks_async(body)
            elif body is not None:
                content = body
            try:
                response = await self._http.request(
                    call.method, call.path, json=call.json, params=call.params,
                    headers=headers, content=content,
                )  # fmt: skip
            except httpx.TransportError as exc:
                pause = self._pause(attempt, None)
                if pause is None:
                    raise _unreachable(self.server, exc) from exc
            else:
                pause = self._pause(attempt, response)
                if pause is None:
                    return _checked(response)
            await asyncio.sleep(pause)
            attempt += 1

    async def upload(self, source: Source) -> Image:
        """Store bytes, or the file at a path (streamed). `new` says whether it was stored now."""
        body = source if isinstance(source, bytes) else Path(source)
        result = _stored(await self._send(_Call("PUT", "/images"), body))
        assert isinstance(result, Image)
        return result

    async def import_url(self, url: str, *, background: bool = False) -> Image | Job:
        """Store the image at the remote `url`; with `background`, a Job to `wait` for."""
        call = _Call("POST", "/images", json={"url": url}, headers=_prefer(background))
        return _stored(await self._send(call))

    async def derive(
        self, source: str, *, background: bool = False, **operations: object
    ) -> Image | Job:
        """Store the result of `operations` on `source` as a new original (signed with `key`)."""
        return _stored(await self._send(self._derive_call(source, operations, background)))

    async def job(self, job: str | Job) -> Job:
        """The state of a background job now."""
        job_id = job.id if isinstance(job, Job) else job
        return Job.from_json((await self._send(_Call("GET", f"/jobs/{job_id}"))).json())

    async def wait(self, job: str | Job, *, within: float = 300.0, poll: float = 0.2) -> Image:
        """Poll `job` until it is done (its Image) or failed (raises its problem)."""
        deadline = time.monotonic() + within
        while True:
            state = await self.job(job)
            if state.status != "pending":
                return _finished(state)
            if time.monotonic() > deadline:
                raise ProgImageError(0, f"job {state.id} still pending after {within}s")
            await asyncio.sleep(poll)

    async def health(self) -> dict[str, Any]:
        """`{"status": "ok"}` from a service that is up; ProgImageError otherwise."""
        return (await self._send(_Call("GET", "/health"))).json()

    async def exists(self, image: str) -> bool:
        """Whether the service has the original with this id (one HEAD request)."""
        try:
            await self._send(_Call("HEAD", f"/images/{image}"))
        except ProgImageError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def info(self, image: str) -> dict[str, Any]:
        """Facts about a stored original: format, size, bands, alpha, pages, perceptual hash."""
        return (await self._send(_Call("GET", f"/images/{image}/info"))).json()

    async def list(self, *, page_size: int = 100) -> AsyncIterator[Image]:
        """Every stored original in id order, fetched `page_size` at a time."""
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page_size, **({"after": after} if after else {})}
            page = (await self._send(_Call("GET", "/images", params=params))).json()
            for item in page["images"]:
                yield Image.from_json(item)
            after = page["next"]
            if not after:
                return

    async def delete(self, image: str) -> None:
        """Delete an original; ProgImageError 404 when there is no such id."""
        await self._send(_Call("DELETE", f"/images/{image}"))

    async def original(self, image: str) -> bytes:
        """The exact bytes stored under this id."""
        return (await self._send(_Call("GET", f"/images/{image}"))).content

    async def get(self, source: str, **operations: object) -> bytes:
        """The bytes of `source` with `operations` (the URL `url` builds), from the service."""
        path = links.url(source, key=self.key, **operations)
        return (await self._send(_Call("GET", path))).content


def _finished(job: Job) -> Image:
    if job.status == "done" and job.image is not None:
        return job.image
    error = job.error or {}
    raise ProgImageError(int(error.get("status") or 0), str(error.get("detail") or job.status),
                         error)  # fmt: skip
