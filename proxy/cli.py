"""The `progimage` command: serve, sign, url, upload, check-config."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile

from . import config as config_module
from . import links, signing, upload

CONFIG_HELP = "YAML file (default: $PROGIMAGE_CONFIG, else ./config.yaml if present)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="progimage", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--config", help=CONFIG_HELP)
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int, help="processes; 0 = one per core")
    sign = commands.add_parser("sign", help="print PATH signed with the configured key")
    sign.add_argument("path")
    sign.add_argument("--config", help=CONFIG_HELP)
    url = commands.add_parser("url", help="print the URL (or srcset) of SOURCE with operations")
    links.add_arguments(url)
    upload_command = commands.add_parser("upload", help="store files and directories on a server")
    upload.add_arguments(upload_command)
    check = commands.add_parser("check-config", help="validate the configuration and exit")
    check.add_argument("--config", help=CONFIG_HELP)
    args = parser.parse_args(argv)
    try:
        config = config_module.load(config_module.discover(args.config))
    except config_module.ConfigError as exc:
        print(f"progimage: bad configuration: {exc}", file=sys.stderr)
        return 2
    if args.command == "sign":
        return _sign(config, args.path)
    if args.command == "url":
        return _url(config, args)
    if args.command == "upload":
        return upload.run(args)
    if args.command == "check-config":
        print("configuration is valid")
        return 0
    server = dataclasses.replace(
        config.server,
        **{k: v for k, v in (("host", args.host), ("port", args.port),
                             ("workers", args.workers)) if v is not None},
    )  # fmt: skip
    return _serve(dataclasses.replace(config, server=server))


def _sign(config: config_module.Config, path: str) -> int:
    if not config.signing.keys:
        print("progimage: signing.key is not set", file=sys.stderr)
        return 2
    print(signing.signed_path(path, config.signing.keys[0]))
    return 0


def _url(config: config_module.Config, args: argparse.Namespace) -> int:
    key = config.signing.keys[0] if config.signing.keys else None
    try:
        print(links.from_args(args, key))
    except ValueError as exc:
        print(f"progimage: {exc}", file=sys.stderr)
        return 2
    return 0


def _serve(config: config_module.Config) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Every record would otherwise look up its caller's frame and its thread and process
    # names, which "%(message)s" never shows (the logging HOWTO's optimisation settings):
    # at cache-hit rates the access log is a sizeable part of each request.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    # libvips reports each render's plan at INFO (a dozen lines a render): not for this log.
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    workers = config.server.workers or os.cpu_count() or 1
    # With several workers each gets its own listening socket on the port (SO_REUSEPORT), so
    # the kernel spreads connections over them; one shared socket let a single worker accept
    # every keep-alive connection while the others idled (measured by `make bench`).
    # The parent's socket only claims the port, so that a port in use fails here, at once.
    sock = _bind(config.server, listen=workers == 1, shared=workers > 1)
    print(
        f"progimage serving on http://{config.server.host}:{config.server.port} "
        f"({workers} worker{'s' if workers > 1 else ''})",
        flush=True,
    )
    if workers == 1:
        _run_worker(config, sock)
        return 0
    # Metrics of every worker go to files in one directory, so any worker's /metrics
    # reports the sum over all of them (prometheus-client's multiprocess mode).
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="progimage-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            try:
                sock.close()
                _run_worker(config, _bind(config.server, listen=True, shared=True))
            finally:
                os._exit(0)
        children.append(pid)
    sock.close()

    def stop(signum, _frame):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    status = 0
    for child in children:
        while True:
            try:
                _, code = os.waitpid(child, 0)
                status = status or os.waitstatus_to_exitcode(code)
                break
            except InterruptedError:
                continue
    if metrics_dir:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0 if status in (0, -signal.SIGTERM) else 1


def _bind(server: config_module.ServerConfig, *, listen: bool, shared: bool) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in server.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:  # a single process keeps the port to itself: a second copy fails to start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((server.host, server.port))
    if listen:
        sock.listen(1024)
    return sock


def _run_worker(config: config_module.Config, sock: socket.socket) -> None:
    # Imported here so that forked workers each initialise libvips themselves.
    from aiohttp import web

    from .app import create_app

    # aiohttp arms keepalive_timeout when a connection opens and after every response, and
    # closes the connection if no complete request head has arrived by then: this bounds a
    # client that trickles its headers, as well as idle keep-alive connections.
    web.run_app(
        create_app(config), sock=sock, print=None, access_log=None,
        keepalive_timeout=config.limits.header_timeout,
    )  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
