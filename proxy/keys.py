"""Typed application keys: how handlers find the resources created at start-up."""

from __future__ import annotations

from aiohttp import web

from .config import Config
from .renderer import Renderer
from .sources.http import HttpSource
from .sources.local import LocalStore
from .workers import RenderPool

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", LocalStore)
POOL = web.AppKey("pool", RenderPool)
RENDERER = web.AppKey("renderer", Renderer)
REMOTE = web.AppKey("remote", HttpSource)
