"""`s3://{bucket}/{key}`: objects of buckets that already exist, read where they are.

Only the buckets in `sources.s3.buckets` are read (any other → 403), with the node's own AWS
credentials (the standard chain) from `sources.s3.endpoint_url`/`region`, which need not be the
store's. An object is streamed under `limits.max_source_bytes` (413, the connection dropped as
soon as it is known), within `limits.fetch_timeout` (504); concurrent first requests for one
object share one GET, and it is then kept in the source LRU for `cache.remote_ttl` like a
remote URL. The ETag includes the object's own ETag, so a rewritten object renders anew once
the LRU lets go of it. A missing key is 404; any other answer of the store is 502 (AccessDenied
too: it is the server's credentials that failed, and without s3:ListBucket S3 reports a missing
key that way as well).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import aiohttp
from botocore.exceptions import BotoCoreError, ClientError

from .. import cache
from ..config import Config
from ..errors import BadGateway, Forbidden, GatewayTimeout, NotFound, PayloadTooLarge
from ..urls import SourceRef
from ..workers import SingleFlight
from . import Original
from .kept import Kept, check_image
from .s3 import CHUNK, MISSING, client

log = logging.getLogger(__name__)


class BucketSource:
    """Objects of `sources.s3.buckets`; every `s3:` URL is 403 when the list is empty."""

    def __init__(self, config: Config, kept: cache.BytesLRU) -> None:
        self.config = config
        self.buckets = frozenset(config.sources.s3.buckets)
        self.kept = kept  # shared with the other sources: one cache.sources_mb for all
        self.flights = SingleFlight()
        self.gets = 0  # GETs sent to the store (not answered from the LRU or a shared flight)
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def open(self) -> None:
        if not self.buckets:
            return  # no client, no credentials looked up, on nodes that read no bucket
        s3 = self.config.sources.s3
        self._client = await self._stack.enter_async_context(
            client(s3.endpoint_url, s3.region, read_timeout=self.config.limits.fetch_timeout)
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def fetch(self, ref: SourceRef) -> Original:
        bucket, key = ref.value.removeprefix("s3://").split("/", 1)
        if bucket not in self.buckets:
            raise Forbidden(f"s3://{bucket}: not in sources.s3.buckets")
        entry = self.kept.get(ref.value)
        if entry is not None:
            if entry.expires > time.monotonic():
                return entry.original
            self.kept.discard_where(lambda name, _entry: name == ref.value)
        original, _shared = await self.flights.do(ref.value, lambda: self._keep(ref.value))
        return original

    async def _keep(self, value: str) -> Original:
        original = await self.download(value)
        ttl = self.config.cache.remote_ttl
        if ttl > 0:
            self.kept.put(value, Kept(original, expires=time.monotonic() + ttl))
        return original

    async def download(self, value: str) -> Original:
        """One uncached GET of `s3://bucket/key`, capped, timed, checked to be an image."""
        bucket, key = value.removeprefix("s3://").split("/", 1)
        if self._client is None:
            raise Forbidden(f"s3://{bucket}: not in sources.s3.buckets")
        limit = self.config.limits.fetch_timeout
        self.gets += 1
        try:
            async with asyncio.timeout(limit):
                data, etag = await self._get(bucket, key)
        except TimeoutError as exc:
            raise GatewayTimeout(f"{value}: the store did not answer within {limit:g} s") from exc
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in MISSING:
                raise NotFound(f"{value}: no such object") from None
            log.warning("s3 source %s: %s", value, exc)
            raise BadGateway(f"{value}: the store answered {code or 'an error'}") from None
        except (BotoCoreError, aiohttp.ClientError) as exc:
            log.warning("s3 source %s unreachable: %r", value, exc)
            raise BadGateway(f"{value}: the store cannot be reached") from None
        check_image(data, allow_svg=self.config.sources.allow_svg)
        return Original(data, identity=f"{value}\netag:{etag}", tag=cache.url_tag(value))

    async def _get(self, bucket: str, key: str) -> tuple[bytes, str]:
        maximum = self.config.limits.max_source_bytes
        too_large = PayloadTooLarge(f"s3://{bucket}/{key}: larger than {maximum} bytes")
        response = await self._client.get_object(Bucket=bucket, Key=key)
        async with response["Body"] as body:
            if response.get("ContentLength", 0) > maximum:
                raise too_large  # leaving the block closes the connection unread
            data = bytearray()
            async for chunk in body.iter_chunks(CHUNK):
                data += chunk
                if len(data) > maximum:
                    raise too_large
        return bytes(data), str(response.get("ETag", ""))
