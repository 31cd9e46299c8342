"""The peers' URL languages (SPEC §13): each dialect parses its peer's grammar into the native
Options and SourceRef and hands them to the native response path, so caching, limits, SSRF
rules, metrics and ETags are the native ones. A dialect is a parser, never a second pipeline.

Each module here exposes `add_routes(router, settings)`, called (before the native catch-all
route) for every enabled dialect with its own `dialects.<name>` settings; a dialect served at
the root (prefix "") registers only the paths its grammar can claim.
"""

from __future__ import annotations

from importlib import import_module

from aiohttp import web

from ..config import Config


def add_routes(router: web.UrlDispatcher, config: Config) -> None:
    for name, settings in config.dialects.enabled().items():
        import_module(f"{__name__}.{name}").add_routes(router, settings)
