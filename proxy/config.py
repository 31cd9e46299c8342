"""The service's one typed configuration object, read from YAML and environment overrides."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

ENV_PREFIX = "PROGIMAGE_"
# Variables of the `progimage` command itself, not configuration overrides.
CONFIG_VARIABLE = "PROGIMAGE_CONFIG"
COMMAND_VARIABLES = frozenset({CONFIG_VARIABLE, "PROGIMAGE_TOKEN"})
DEFAULT_FILE = "config.yaml"
OUTPUT_FORMATS = ("jpeg", "png", "webp", "avif", "jxl", "gif", "tiff", "auto")
STORAGE_BACKENDS = ("local", "s3")


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid; the message names the key."""


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    # 0 means one process per core; kept as 0 so the server decides at fork time.
    workers: int = 1


@dataclass(frozen=True)
class StorageConfig:
    backend: str = "local"
    path: str = "./data"
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    consistency_s: float = 5.0
    previews: bool = True


@dataclass(frozen=True)
class CacheConfig:
    memory_mb: int = 128
    sources_mb: int = 256
    remote_ttl: int = 86400
    sources_in_store: bool = False
    results_in_store: bool = False
    results_store_mb: int = 1024


@dataclass(frozen=True)
class LimitsConfig:
    max_upload_bytes: int = 52428800
    max_source_bytes: int = 52428800
    max_pixels: int = 71000000
    max_output_dimension: int = 8192
    concurrency: int = 0
    queue: int = 64
    fetch_timeout: float = 10.0
    header_timeout: float = 15.0
    body_idle_timeout: float = 30.0
    body_timeout: float = 300.0
    # A sandboxed decoder (HEIC, PDF, video, JPEG XL, BMP, ICO: proxy/inputs.py) past any of
    # these is killed: 422 for CPU time and memory, 504 for the wall clock.
    decoder_cpu_seconds: int = 10
    decoder_memory: int = 1073741824
    decoder_timeout: float = 20.0

    @property
    def effective_concurrency(self) -> int:
        return self.concurrency or os.cpu_count() or 1


@dataclass(frozen=True)
class S3SourcesConfig:
    """`s3://{bucket}/{key}` sources: only these buckets, read with the node's AWS chain."""

    buckets: tuple[str, ...] = ()
    endpoint_url: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class LocalSourcesConfig:
    """`local:///{path}` sources: files under `root` (None: off)."""

    root: str | None = None


@dataclass(frozen=True)
class SourcesConfig:
    allowed_hosts: tuple[str, ...] = ("*",)
    allow_private_networks: bool = False
    allow_svg: bool = False
    s3: S3SourcesConfig = field(default_factory=S3SourcesConfig)
    local: LocalSourcesConfig = field(default_factory=LocalSourcesConfig)


@dataclass(frozen=True)
class SigningConfig:
    # Spelled `signing.key` in YAML; several keys allow rotation: the first signs, any verifies.
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class AuthConfig:
    tokens: tuple[str, ...] = ()


@dataclass(frozen=True)
class QualityConfig:
    jpeg: int = 80
    webp: int = 80
    avif: int = 60
    # JPEG XL 75 scores between AVIF 60 and WebP 80 by SSIMULACRA2 (1.3-3 points under WebP)
    # in 0.73-0.84 x WebP's bytes; 80 would match WebP for 0.85-0.95 x (README "JPEG XL").
    jxl: int = 75


@dataclass(frozen=True)
class EffortConfig:
    # CPU the encoder spends for smaller files at the same quality: JPEG 0-2, WebP 0-6,
    # AVIF 0-9, JPEG XL 1-10.
    # JPEG: 0 baseline, 1 progressive, 2 progressive with trellis quantisation. Progressive
    # is ~4 % smaller and nearly doubles the encode (800x600: 13.8 against 7.4 ms), the
    # floor of a render that no preview serves (README "JPEG encoder settings").
    jpeg: int = 0
    # AVIF effort 0 renders in a fifth of effort 2's time for 5-9 % more bytes, still well
    # under WebP's (README "AVIF encoder settings").
    webp: int = 4
    avif: int = 0
    # JPEG XL 3 decodes to the same pixels as 1 in ~6 % fewer bytes, at about the same time;
    # 5 takes 3-7 x as long for fewer bytes that also score lower (README "JPEG XL").
    jxl: int = 3


@dataclass(frozen=True)
class ChromaConfig:
    # AVIF at full chroma resolution (4:4:4, as sharp and avifenc write it) scores as high by
    # SSIMULACRA2 as WebP 80 in 0.79-0.88 x its bytes for ~1-2 ms more encode; 4:2:0 needs
    # 0.99-1.02 x (README "AVIF encoder settings"). Browsers decode both. "auto" is libvips'
    # own rule: 4:2:0 below quality 90, 4:4:4 from there.
    avif: str = "4:4:4"


@dataclass(frozen=True)
class OutputConfig:
    format: str | None = None
    quality: QualityConfig = field(default_factory=QualityConfig)
    effort: EffortConfig = field(default_factory=EffortConfig)
    chroma: ChromaConfig = field(default_factory=ChromaConfig)
    metadata: str = "strip"
    auto_formats: tuple[str, ...] = ("avif", "webp")


@dataclass(frozen=True)
class OverlaysConfig:
    allow_unsigned_text: bool = False


@dataclass(frozen=True)
class PresetsConfig:
    definitions: Mapping[str, str] = field(default_factory=dict)
    only: bool = False


@dataclass(frozen=True)
class FallbackConfig:
    image: str | None = None  # a stored id, or the path of an image file
    status: int = 404
    max_age: int = 60


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class TelemetryConfig:
    otlp_endpoint: str | None = None  # null: no tracing at all
    service_name: str = "progimage"


@dataclass(frozen=True)
class ThumborDialect:
    enabled: bool = False
    prefix: str = "/thumbor"
    key: str | None = None
    allow_unsafe: bool = False
    default_scheme: str = "https"


@dataclass(frozen=True)
class ImgproxyDialect:
    enabled: bool = False
    prefix: str = "/imgproxy"
    key: str | None = None  # hex, as imgproxy's IMGPROXY_KEY
    salt: str | None = None  # hex, as imgproxy's IMGPROXY_SALT
    watermark: str | None = None  # the stored id `watermark/wm` draws
    default_scheme: str = "https"


@dataclass(frozen=True)
class ImaginaryDialect:
    enabled: bool = False
    prefix: str = "/imaginary"
    key: str | None = None


@dataclass(frozen=True)
class DialectsConfig:
    thumbor: ThumborDialect = field(default_factory=ThumborDialect)
    imgproxy: ImgproxyDialect = field(default_factory=ImgproxyDialect)
    imaginary: ImaginaryDialect = field(default_factory=ImaginaryDialect)

    def enabled(self) -> dict[str, ThumborDialect | ImgproxyDialect | ImaginaryDialect]:
        return {
            name: getattr(self, name)
            for name in ("thumbor", "imgproxy", "imaginary")
            if getattr(self, name).enabled
        }


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    signing: SigningConfig = field(default_factory=SigningConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    cors: CorsConfig = field(default_factory=CorsConfig)
    overlays: OverlaysConfig = field(default_factory=OverlaysConfig)
    presets: PresetsConfig = field(default_factory=PresetsConfig)
    fallback: FallbackConfig = field(default_factory=FallbackConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    dialects: DialectsConfig = field(default_factory=DialectsConfig)


# --- value checks: each takes (label, raw value) and returns the typed value -------------------

Check = Callable[[str, Any], Any]


def _bad(label: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{label}: expected {expected}, got {value!r}")


def _integer(low: int, high: int | None = None) -> Check:
    expected = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"

    def check(label: str, value: Any) -> int:
        # YAML writes 8080.0 as a float; an integral float is what the user meant.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        # bool is a subclass of int, but `port: true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(label, expected, value)
        if value < low or (high is not None and value > high):
            raise _bad(label, expected, value)
        return value

    return check


def _number(low: float, *, inclusive: bool) -> Check:
    expected = f"a number {'>=' if inclusive else '>'} {low:g}"

    def check(label: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _bad(label, expected, value)
        value = float(value)
        if not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise _bad(label, expected, value)
        return value

    return check


def _flag(label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(label, "true or false", value)
    return value


def _text(label: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(label, "a non-empty string", value)
    return value


def _any_text(label: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _bad(label, "a string", value)
    return value


def _optional_text(label: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(label, "a non-empty string or null", value)
    return value


def _texts(label: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise _bad(label, "a string or a list of strings", value)
    for item in value:
        # An empty signing key or token would be trivially guessable, so refuse it outright.
        if not isinstance(item, str) or not item:
            raise _bad(label, "non-empty strings", item)
    return tuple(value)


def _hosts(label: str, value: Any) -> tuple[str, ...]:
    # Host names are case-insensitive; lower-casing here lets the matcher compare plainly.
    return tuple(host.lower() for host in _texts(label, value))


def _backend(label: str, value: Any) -> str:
    if value not in STORAGE_BACKENDS:
        raise _bad(label, " or ".join(STORAGE_BACKENDS), value)
    return value


def _output_format(label: str, value: Any) -> str | None:
    if value is None:
        return None
    name = value.lower() if isinstance(value, str) else value
    name = "jpeg" if name == "jpg" else name
    if name not in OUTPUT_FORMATS:
        raise _bad(label, "null or one of " + ", ".join(OUTPUT_FORMATS + ("jpg",)), value)
    return name


def _endpoint(label: str, value: Any) -> str | None:
    url = _optional_text(label, value)
    if url is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        raise _bad(label, "null or an http(s):// URL", value)
    return url


def _choice(*values: str) -> Check:
    def check(label: str, value: Any) -> str:
        if value not in values:
            raise _bad(label, " or ".join(values), value)
        return value

    return check


AUTO_FORMATS = ("avif", "webp", "jxl")  # what fmt/auto can offer: each has its image/ type


def _auto_formats(label: str, value: Any) -> tuple[str, ...]:
    names = _texts(label, value)
    for name in names:
        if name not in AUTO_FORMATS:
            raise _bad(label, "a list of " + ", ".join(AUTO_FORMATS), name)
    return names


def _presets(label: str, value: Any) -> dict[str, str]:
    """Names to operation paths, each parsed now so a bad preset stops the start."""
    from .urls import compile_presets

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad(label, 'a mapping of names to paths such as "/fill/128x128/fmt/webp"', value)
    for name, path in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise _bad(label, "preset names of letters, digits, '_' or '-'", name)
        if not isinstance(path, str):
            raise _bad(f"{label}.{name}", "an operations path", path)
    try:
        compile_presets(dict(value), 10**9)
    except ValueError as exc:
        raise ConfigError(f"{label}.{exc}") from None
    return dict(value)


# S3's own rule for bucket names (no uppercase, no underscores, 3 to 63 characters).
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _buckets(label: str, value: Any) -> tuple[str, ...]:
    names = _texts(label, value)
    for name in names:
        if not BUCKET_RE.match(name):
            raise _bad(label, "S3 bucket names (3-63 of a-z 0-9 . -)", name)
    return names


def _directory(label: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not os.path.isdir(value):
        raise _bad(label, "null or the path of an existing directory", value)
    return value


def _fallback_image(label: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value)):
        return value
    if not isinstance(value, str) or not os.path.isfile(value):
        raise _bad(label, "null, a stored image id or the path of an image file", value)
    return value


def _prefix(label: str, value: Any) -> str:
    # "" serves the dialect at the root, beside the native grammar.
    if value is None or value == "" or value == "/":
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", value):
        raise _bad(label, 'a path prefix like "/thumbor", or ""', value)
    return value


def _optional_hex(label: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value):
        raise _bad(label, "null or an even number of hex digits", value)
    return value.lower()


CHROMA = ("4:4:4", "4:2:0", "auto")
# YAML 1.1 reads an unquoted 4:2:0 as the base-60 integer 14520: take it as what was written.
_SEXAGESIMAL = {a * 3600 + b * 60 + c: f"{a}:{b}:{c}" for a, b, c in ((4, 4, 4), (4, 2, 0))}


def _chroma(label: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = _SEXAGESIMAL.get(value, value)
    if value not in CHROMA:
        raise _bad(label, " or ".join(CHROMA), value)
    return value


def _optional_id(label: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value)):
        return value
    raise _bad(label, "null or a stored image id", value)


# Environment strings for these keys are taken verbatim unless YAML clearly meant something
# else (null, a [list], a quoted string): a secret like `12345` or `a#b` must not be mangled.
_TEXTUAL: frozenset[Check] = frozenset(
    {
        _text,
        _any_text,
        _optional_text,
        _texts,
        _hosts,
        _endpoint,
        _optional_hex,
        _prefix,
        _buckets,
        _directory,
        _chroma,
    }
)

_SIZE = _integer(0)

# Keys as spelled in YAML and the environment; a nested dict is a nested section.
_SCHEMA: dict[str, Any] = {
    "server": {"host": _text, "port": _integer(1, 65535), "workers": _integer(0)},
    "storage": {
        "backend": _backend,
        "path": _text,
        "bucket": _optional_text,
        "prefix": _any_text,
        "endpoint_url": _optional_text,
        "region": _optional_text,
        "consistency_s": _number(0, inclusive=True),
        "previews": _flag,
    },
    "cache": {
        "memory_mb": _SIZE,
        "sources_mb": _SIZE,
        "remote_ttl": _SIZE,
        "sources_in_store": _flag,
        "results_in_store": _flag,
        "results_store_mb": _SIZE,
    },
    "limits": {
        "max_upload_bytes": _SIZE,
        "max_source_bytes": _SIZE,
        "max_pixels": _integer(1),
        "max_output_dimension": _integer(1),
        "concurrency": _integer(0),
        "queue": _integer(0),
        "fetch_timeout": _number(0, inclusive=False),
        "header_timeout": _number(0, inclusive=False),
        "body_idle_timeout": _number(0, inclusive=False),
        "body_timeout": _number(0, inclusive=False),
        "decoder_cpu_seconds": _integer(1),
        "decoder_memory": _SIZE,
        "decoder_timeout": _number(0, inclusive=False),
    },
    "sources": {
        "allowed_hosts": _hosts,
        "allow_private_networks": _flag,
        "allow_svg": _flag,
        "s3": {"buckets": _buckets, "endpoint_url": _optional_text, "region": _optional_text},
        "local": {"root": _directory},
    },
    "signing": {"key": _texts},
    "auth": {"tokens": _texts},
    "output": {
        "format": _output_format,
        "quality": {
            "jpeg": _integer(1, 100),
            "webp": _integer(1, 100),
            "avif": _integer(1, 100),
            "jxl": _integer(1, 100),
        },
        "effort": {
            "jpeg": _integer(0, 2),
            "webp": _integer(0, 6),
            "avif": _integer(0, 9),
            "jxl": _integer(1, 10),
        },  # fmt: skip
        "chroma": {"avif": _chroma},
        "metadata": _choice("strip", "copyright", "keep"),
        "auto_formats": _auto_formats,
    },
    "cors": {"allow_origins": _texts},
    "overlays": {"allow_unsigned_text": _flag},
    "presets": {"definitions": _presets, "only": _flag},
    "fallback": {
        "image": _fallback_image,
        "status": lambda label, value: int(_choice("404", "200")(label, str(value))),
        "max_age": _integer(0, 86400),
    },
    "telemetry": {"otlp_endpoint": _endpoint, "service_name": _text},
    "dialects": {
        "thumbor": {
            "enabled": _flag,
            "prefix": _prefix,
            "key": _optional_text,
            "allow_unsafe": _flag,
            "default_scheme": _choice("https", "http"),
        },
        "imgproxy": {
            "enabled": _flag,
            "prefix": _prefix,
            "key": _optional_hex,
            "salt": _optional_hex,
            "watermark": _optional_id,
            "default_scheme": _choice("https", "http"),
        },
        "imaginary": {"enabled": _flag, "prefix": _prefix, "key": _optional_text},
    },
}

_CLASSES: dict[str, type] = {
    "": Config,
    "server": ServerConfig,
    "storage": StorageConfig,
    "cache": CacheConfig,
    "limits": LimitsConfig,
    "sources": SourcesConfig,
    "sources.s3": S3SourcesConfig,
    "sources.local": LocalSourcesConfig,
    "signing": SigningConfig,
    "auth": AuthConfig,
    "output": OutputConfig,
    "output.quality": QualityConfig,
    "output.effort": EffortConfig,
    "output.chroma": ChromaConfig,
    "cors": CorsConfig,
    "overlays": OverlaysConfig,
    "presets": PresetsConfig,
    "fallback": FallbackConfig,
    "telemetry": TelemetryConfig,
    "dialects": DialectsConfig,
    "dialects.thumbor": ThumborDialect,
    "dialects.imgproxy": ImgproxyDialect,
    "dialects.imaginary": ImaginaryDialect,
}

# YAML names that differ from the dataclass field they fill.
_RENAMED: dict[type, dict[str, str]] = {SigningConfig: {"key": "keys"}}


# --- public entry points ------------------------------------------------------------------------


def load(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read the YAML file at `path` (None: defaults only), apply `env` (None: os.environ)."""
    data = {} if path is None else _read_yaml(path)
    return from_mapping(data, os.environ if env is None else env)


def discover(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> str | None:
    """The config file a `progimage` command reads (SPEC §14), or None for defaults only.

    `--config` wins, then the file named by PROGIMAGE_CONFIG, then ./config.yaml when it
    exists. A named file that is missing is an error when read, never silently skipped.
    """
    if explicit is not None:
        return os.fspath(explicit)
    env = os.environ if env is None else env
    named = env.get(CONFIG_VARIABLE, "").strip()
    if named:
        return named
    local = os.path.join(os.fspath(cwd) if cwd is not None else os.getcwd(), DEFAULT_FILE)
    return local if os.path.isfile(local) else None


def from_mapping(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate an already-parsed config mapping with `env` overrides (None: no overrides)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"config: expected a mapping of sections, got {data!r}")
    merged = _plain(data)
    origins = _apply_env(merged, env or {})
    config = _build("", _SCHEMA, merged, origins)
    _check_dialects(config)
    _check_output(config)
    return config


def _check_output(config: Config) -> None:
    """JPEG XL output carries no metadata (proxy/imaging.py): a server whose default keeps
    some must not hand it out stripped to whoever negotiates it or gets it by default."""
    output = config.output
    if output.metadata == "strip":
        return
    if "jxl" in output.auto_formats:
        raise ConfigError(
            f"output.auto_formats: jxl carries no metadata, and output.metadata is"
            f" {output.metadata}"
        )
    if output.format == "jxl":
        raise ConfigError(
            f"output.format: jxl carries no metadata, and output.metadata is {output.metadata}"
        )


def _check_dialects(config: Config) -> None:
    """A dialect is never a way around signing: with `signing.key` set, each enabled dialect
    needs its own key; and two dialects cannot share a prefix."""
    seen: dict[str, str] = {}
    for name, dialect in config.dialects.enabled().items():
        if config.signing.keys and not dialect.key:
            raise ConfigError(
                f"dialects.{name}.key: required while signing.key is set, or {name} URLs"
                " would be served unsigned"
            )
        if name == "imgproxy" and bool(dialect.key) != bool(getattr(dialect, "salt", None)):
            raise ConfigError("dialects.imgproxy: key and salt are set together or not at all")
        if dialect.prefix in seen:
            raise ConfigError(
                f"dialects.{name}.prefix: {dialect.prefix or '(root)'} is already"
                f" dialects.{seen[dialect.prefix]}'s"
            )
        seen[dialect.prefix] = name


def with_overrides(config: Config, **sections: Any) -> Config:
    """A new validated Config: `config` with the given sections (YAML key names) merged in."""
    base = _to_mapping(config)
    for name, value in sections.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = _to_mapping(value)
        if isinstance(value, Mapping) and isinstance(base.get(name), dict):
            _merge(base[name], _plain(value))
        else:
            base[name] = value
    return from_mapping(base, {})


# --- internals ----------------------------------------------------------------------------------


def _read_yaml(path: str | os.PathLike[str]) -> Any:
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read config file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: config file is not UTF-8 text: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: invalid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise ConfigError(f"{name}: expected a mapping of sections at the top level, got {kind}")
    return data


def _plain(value: Any) -> Any:
    """A deep copy with every mapping as a dict, so overrides never touch the caller's data."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _unknown(
    kind: str, key: str, name: object, known: Mapping[str, Any], var: str | None = None
) -> ConfigError:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f"did you mean {close[0]}?" if close else "known: " + ", ".join(known)
    where = f" in {var}" if var else ""
    return ConfigError(f"unknown {kind} {key}{where} ({hint})")


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """Write PROGIMAGE_* overrides into `data`; return which variable set which key."""
    overrides = []
    for var, raw in env.items():
        if var.startswith(ENV_PREFIX) and var not in COMMAND_VARIABLES:
            parts = var[len(ENV_PREFIX) :].lower().split("__")
            overrides.append((len(parts), var, parts, raw))
    origins: dict[str, str] = {}
    # Shallow first, so PROGIMAGE_OUTPUT__QUALITY__JPEG wins over PROGIMAGE_OUTPUT__QUALITY.
    for _, var, parts, raw in sorted(overrides):
        schema: Any = _SCHEMA
        target = data
        for depth, part in enumerate(parts):
            key = ".".join(parts[: depth + 1])
            if not isinstance(schema, dict) or part not in schema:
                kind = "section" if depth == 0 else "key"
                known = schema if isinstance(schema, dict) else {}
                raise _unknown(kind, key, part, known, var)
            schema = schema[part]
            if depth == len(parts) - 1:
                value = _env_value(var, key, raw, schema)
                if isinstance(value, Mapping) and isinstance(target.get(part), dict):
                    _merge(target[part], value)
                else:
                    target[part] = _plain(value)
                origins[key] = var
            else:
                section = target.get(part)
                if section is None:
                    section = target[part] = {}
                if not isinstance(section, dict):
                    raise _bad(key, "a mapping", section)
                target = section
    return origins


def _env_value(var: str, key: str, raw: str, schema: Any) -> Any:
    text = raw.strip()
    # An empty variable is more likely a missing secret than a deliberate null; say so.
    if not text:
        return ""
    textual = not isinstance(schema, dict) and schema in _TEXTUAL
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        if textual:
            return text
        raise ConfigError(f"{key} (from {var}): not a valid YAML value: {raw!r}") from exc
    if textual and not (value is None or isinstance(value, list) or text[0] in "'\""):
        return text
    return value


def _build(path: str, schema: dict[str, Any], data: Any, origins: Mapping[str, str]) -> Any:
    label = _label(path, origins) if path else "config"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _bad(label, "a mapping", data)
    cls = _CLASSES[path]
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else str(name)
        if name not in schema:
            raise _unknown("key" if path else "section", key, name, schema)
        rule = schema[name]
        field_name = _RENAMED.get(cls, {}).get(name, name)
        if isinstance(rule, dict):
            kwargs[field_name] = _build(key, rule, value, origins)
        else:
            kwargs[field_name] = rule(_label(key, origins), value)
    built = cls(**kwargs)
    if isinstance(built, StorageConfig) and built.backend == "s3" and not built.bucket:
        raise ConfigError(f"{_label('storage.bucket', origins)}: required when backend is s3")
    return built


def _label(key: str, origins: Mapping[str, str]) -> str:
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        var = origins.get(".".join(parts[:end]))
        if var:
            return f"{key} (from {var})"
    return key


def _to_mapping(obj: Any) -> dict[str, Any]:
    """The YAML-shaped mapping of a config dataclass, the inverse of _build."""
    yaml_names = {field: name for name, field in _RENAMED.get(type(obj), {}).items()}
    result: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = yaml_names.get(f.name, f.name)
        if dataclasses.is_dataclass(value):
            result[name] = _to_mapping(value)
        else:
            result[name] = list(value) if isinstance(value, tuple) else value
    return result
