"""Typed application keys: how handlers find the resources created at start-up."""

from __future__ import annotations

from aiohttp import web
from cachetools import LRUCache

from .config import Config
from .jobs import Jobs
from .renderer import Renderer, Rendition
from .sources import Source, Store
from .sources.http import HttpSource
from .urls import Grammar, SourceRef
from .workers import RenderPool

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey("store", Store)
POOL = web.AppKey("pool", RenderPool)
RENDERER = web.AppKey("renderer", Renderer)
REMOTE = web.AppKey("remote", HttpSource)
JOBS = web.AppKey("jobs", Jobs)
GRAMMAR = web.AppKey("grammar", Grammar)
# (raw path, query) -> what it parses to, for the derived-image route (handlers.derived)
PARSED = web.AppKey("parsed", LRUCache)
# Sources by SourceRef kind beyond ids and remote URLs: "s3" and "local".
LOCATED = web.AppKey("located", dict[str, Source])
# What a derived-image request asked for and answered with, for the tracing middleware.
SOURCE = web.RequestKey("source", SourceRef)
RENDITION = web.RequestKey("rendition", Rendition)
