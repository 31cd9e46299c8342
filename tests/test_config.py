"""Tests for proxy.config: defaults, the repo's config.yaml, env overrides and validation."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from proxy.config import (
    AuthConfig,
    CacheConfig,
    Config,
    ConfigError,
    CorsConfig,
    LimitsConfig,
    OutputConfig,
    QualityConfig,
    ServerConfig,
    SigningConfig,
    SourcesConfig,
    StorageConfig,
    from_mapping,
    load,
    with_overrides,
)

REPO_CONFIG = Path(__file__).resolve().parent.parent / "config.yaml"


@pytest.fixture(autouse=True)
def _no_progimage_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The developer's own PROGIMAGE_* variables must not leak into tests that read os.environ.
    for name in list(os.environ):
        if name.startswith("PROGIMAGE_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(data: dict, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        from_mapping(data, env)
    return str(info.value)


# --- defaults and the repo's config.yaml --------------------------------------------------------


def test_defaults_match_the_spec() -> None:
    cfg = Config()
    assert cfg.server == ServerConfig(host="127.0.0.1", port=8080, workers=1)
    assert cfg.storage.backend == "local"
    assert cfg.storage.path == "./data"
    assert cfg.storage.bucket is None
    assert cfg.storage.consistency_s == 5.0
    assert cfg.cache == CacheConfig(128, 256, 86400, False, False, 1024)
    assert cfg.limits == LimitsConfig(52428800, 52428800, 71000000, 8192, 0, 64, 10.0)
    assert cfg.sources == SourcesConfig(("*",), False, False)
    assert cfg.signing.keys == ()
    assert cfg.auth.tokens == ()
    assert cfg.output == OutputConfig(None, QualityConfig(80, 80, 60))
    assert cfg.cors.allow_origins == ()


def test_repo_config_yaml_is_the_defaults() -> None:
    assert load(REPO_CONFIG, env={}) == Config()


def _yaml_tree(cls: type) -> dict:
    tree = {}
    for f in dataclasses.fields(cls):
        name = "key" if cls is SigningConfig and f.name == "keys" else f.name
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        tree[name] = _yaml_tree(type(default)) if dataclasses.is_dataclass(default) else None
    return tree


def _key_tree(data: dict) -> dict:
    return {k: _key_tree(v) if isinstance(v, dict) and v else None for k, v in data.items()}


def test_repo_config_yaml_lists_every_key() -> None:
    raw = yaml.safe_load(REPO_CONFIG.read_text(encoding="utf-8"))
    assert _key_tree(raw) == _yaml_tree(Config)
    assert raw["signing"] == {"key": None}
    assert raw["storage"]["path"] == "./data"


def test_load_without_path_gives_defaults() -> None:
    assert load(env={}) == Config()
    assert load() == Config()


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load(write(tmp_path, ""), env={}) == Config()
    assert load(write(tmp_path, "# only a comment\n"), env={}) == Config()


def test_empty_section_gives_its_defaults(tmp_path: Path) -> None:
    assert load(write(tmp_path, "server:\nlimits: {}\n"), env={}) == Config()


def test_file_values_are_read(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server: {host: 0.0.0.0, port: 9000, workers: 0}
storage: {backend: s3, bucket: pics, prefix: p/, region: eu-west-1, consistency_s: 2}
limits: {queue: 3, fetch_timeout: 2.5, concurrency: 4}
sources: {allowed_hosts: ["*.example.com", Cdn.Example.ORG], allow_svg: true}
auth: {tokens: [t1, t2]}
cors: {allow_origins: ["https://a.example"]}
""",
    )
    cfg = load(path, env={})
    assert cfg.server == ServerConfig("0.0.0.0", 9000, 0)
    assert cfg.storage == StorageConfig("s3", "./data", "pics", "p/", None, "eu-west-1", 2.0)
    assert isinstance(cfg.storage.consistency_s, float)
    assert (cfg.limits.queue, cfg.limits.fetch_timeout, cfg.limits.concurrency) == (3, 2.5, 4)
    assert cfg.sources.allowed_hosts == ("*.example.com", "cdn.example.org")
    assert cfg.sources.allow_svg is True
    assert cfg.auth == AuthConfig(("t1", "t2"))
    assert cfg.cors == CorsConfig(("https://a.example",))
    # Untouched keys keep their defaults.
    assert cfg.cache == CacheConfig()
    assert cfg.limits.max_pixels == 71000000


def test_integral_floats_are_accepted_as_ints() -> None:
    cfg = from_mapping({"server": {"port": 8081.0}, "limits": {"queue": 5.0}})
    assert cfg.server.port == 8081 and type(cfg.server.port) is int
    assert cfg.limits.queue == 5 and type(cfg.limits.queue) is int


def test_float_fields_accept_ints() -> None:
    cfg = from_mapping({"limits": {"fetch_timeout": 3}})
    assert cfg.limits.fetch_timeout == 3.0
    assert type(cfg.limits.fetch_timeout) is float


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.limits.queue = 1  # type: ignore[misc]


def test_from_mapping_does_not_modify_its_input() -> None:
    data = {"output": {"quality": {"jpeg": 50}}}
    from_mapping(data, {"PROGIMAGE_OUTPUT__QUALITY__JPEG": "70"})
    assert data == {"output": {"quality": {"jpeg": 50}}}


# --- signing keys and output format -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "keys"),
    [
        (None, ()),
        ("secret", ("secret",)),
        (["new", "old"], ("new", "old")),
        ([], ()),
    ],
)
def test_signing_key_forms(value: object, keys: tuple[str, ...]) -> None:
    assert from_mapping({"signing": {"key": value}}).signing == SigningConfig(keys)


def test_key_rotation_list_from_file_keeps_order(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "signing:\n  key: [current, previous, oldest]\n"), env={})
    assert cfg.signing.keys == ("current", "previous", "oldest")
    assert cfg.signing.keys[0] == "current"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("jpg", "jpeg"), ("JPG", "jpeg"), ("jpeg", "jpeg"), ("WebP", "webp"), ("auto", "auto")],
)
def test_output_format_is_normalised(value: str, expected: str) -> None:
    assert from_mapping({"output": {"format": value}}).output.format == expected


def test_every_output_format_is_accepted() -> None:
    for name in ("jpeg", "png", "webp", "avif", "gif", "tiff", "auto"):
        assert from_mapping({"output": {"format": name}}).output.format == name
    assert from_mapping({"output": {"format": None}}).output.format is None


def test_effective_concurrency() -> None:
    assert LimitsConfig(concurrency=3).effective_concurrency == 3
    assert LimitsConfig(concurrency=0).effective_concurrency == (os.cpu_count() or 1)
    assert LimitsConfig().effective_concurrency >= 1


# --- environment overrides ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("var", "raw", "section", "attr", "expected"),
    [
        ("PROGIMAGE_SIGNING__KEY", "abc", "signing", "keys", ("abc",)),
        ("PROGIMAGE_SIGNING__KEY", "[k2, k1]", "signing", "keys", ("k2", "k1")),
        ("PROGIMAGE_SIGNING__KEY", "null", "signing", "keys", ()),
        # A numeric-looking or YAML-special secret is taken verbatim, never as a number.
        ("PROGIMAGE_SIGNING__KEY", "12345", "signing", "keys", ("12345",)),
        ("PROGIMAGE_SIGNING__KEY", "true", "signing", "keys", ("true",)),
        ("PROGIMAGE_SIGNING__KEY", "s3cr3t #x: y", "signing", "keys", ("s3cr3t #x: y",)),
        ("PROGIMAGE_SIGNING__KEY", "*abc", "signing", "keys", ("*abc",)),
        ("PROGIMAGE_SIGNING__KEY", "'quoted'", "signing", "keys", ("quoted",)),
        (
            "PROGIMAGE_SOURCES__ALLOW_PRIVATE_NETWORKS",
            "true",
            "sources",
            "allow_private_networks",
            True,
        ),
        ("PROGIMAGE_SOURCES__ALLOW_SVG", "false", "sources", "allow_svg", False),
        (
            "PROGIMAGE_SOURCES__ALLOWED_HOSTS",
            "img.example.com",
            "sources",
            "allowed_hosts",
            ("img.example.com",),
        ),
        (
            "PROGIMAGE_SOURCES__ALLOWED_HOSTS",
            "[a.test, b.test]",
            "sources",
            "allowed_hosts",
            ("a.test", "b.test"),
        ),
        ("PROGIMAGE_SOURCES__ALLOWED_HOSTS", "[]", "sources", "allowed_hosts", ()),
        ("PROGIMAGE_LIMITS__QUEUE", "10", "limits", "queue", 10),
        ("PROGIMAGE_LIMITS__FETCH_TIMEOUT", "2.5", "limits", "fetch_timeout", 2.5),
        ("PROGIMAGE_LIMITS__FETCH_TIMEOUT", "3", "limits", "fetch_timeout", 3.0),
        ("PROGIMAGE_SERVER__PORT", "9090", "server", "port", 9090),
        ("PROGIMAGE_SERVER__HOST", "0.0.0.0", "server", "host", "0.0.0.0"),
        ("PROGIMAGE_STORAGE__PATH", "/var/lib/progimage", "storage", "path", "/var/lib/progimage"),
        ("PROGIMAGE_STORAGE__PREFIX", "2024", "storage", "prefix", "2024"),
        ("PROGIMAGE_STORAGE__PREVIEWS", "false", "storage", "previews", False),
        ("PROGIMAGE_CACHE__MEMORY_MB", "0", "cache", "memory_mb", 0),
        ("PROGIMAGE_AUTH__TOKENS", "tok", "auth", "tokens", ("tok",)),
        ("PROGIMAGE_AUTH__TOKENS", "[t1, t2]", "auth", "tokens", ("t1", "t2")),
        ("PROGIMAGE_OUTPUT__FORMAT", "jpg", "output", "format", "jpeg"),
        ("PROGIMAGE_OUTPUT__FORMAT", "null", "output", "format", None),
        ("PROGIMAGE_CORS__ALLOW_ORIGINS", "['*']", "cors", "allow_origins", ("*",)),
    ],
)
def test_env_override(var: str, raw: str, section: str, attr: str, expected: object) -> None:
    cfg = from_mapping({}, {var: raw})
    value = getattr(getattr(cfg, section), attr)
    assert value == expected
    assert type(value) is type(expected)


def test_env_nested_override() -> None:
    cfg = from_mapping({}, {"PROGIMAGE_OUTPUT__QUALITY__JPEG": "70"})
    assert cfg.output.quality == QualityConfig(jpeg=70, webp=80, avif=60)


def test_env_nested_mapping_merges_and_specific_wins() -> None:
    env = {
        "PROGIMAGE_OUTPUT__QUALITY__JPEG": "70",
        "PROGIMAGE_OUTPUT__QUALITY": "{jpeg: 1, avif: 40}",
    }
    data = {"output": {"quality": {"webp": 90}}}
    assert from_mapping(data, env).output.quality == QualityConfig(jpeg=70, webp=90, avif=40)


def test_env_overrides_file_values(tmp_path: Path) -> None:
    path = write(tmp_path, "limits: {queue: 3, max_pixels: 1000}\nsigning: {key: filekey}\n")
    cfg = load(path, env={"PROGIMAGE_LIMITS__QUEUE": "10", "PROGIMAGE_SIGNING__KEY": "envkey"})
    assert cfg.limits.queue == 10
    assert cfg.limits.max_pixels == 1000
    assert cfg.signing.keys == ("envkey",)


def test_env_into_null_section(tmp_path: Path) -> None:
    cfg = load(write(tmp_path, "limits:\n"), env={"PROGIMAGE_LIMITS__QUEUE": "7"})
    assert cfg.limits.queue == 7


def test_load_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGIMAGE_LIMITS__QUEUE", "11")
    monkeypatch.setenv("PROGIMAGE_SOURCES__ALLOW_PRIVATE_NETWORKS", "true")
    cfg = load(REPO_CONFIG)
    assert cfg.limits.queue == 11
    assert cfg.sources.allow_private_networks is True
    # An explicit env mapping replaces os.environ entirely.
    assert load(REPO_CONFIG, env={}).limits.queue == 64


def test_from_mapping_ignores_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROGIMAGE_LIMITS__QUEUE", "11")
    assert from_mapping({}).limits.queue == 64


def test_unrelated_env_is_ignored() -> None:
    assert from_mapping({}, {"HOME": "/root", "PROGIMAGEX": "1", "progimage_x": "1"}) == Config()


@pytest.mark.parametrize(
    ("var", "raw", "needle"),
    [
        ("PROGIMAGE_CACHE__MEMROY_MB", "1", "unknown key cache.memroy_mb"),
        ("PROGIMAGE_CACHEE__MEMORY_MB", "1", "unknown section cachee"),
        ("PROGIMAGE_OUTPUT__QUALITY__PNG", "1", "unknown key output.quality.png"),
        ("PROGIMAGE_LIMITS__QUEUE__X", "1", "unknown key limits.queue.x"),
        ("PROGIMAGE_SIGNING_KEY", "abc", "unknown section signing_key"),
        ("PROGIMAGE_LIMITS__QUEUE", "abc", "limits.queue"),
        ("PROGIMAGE_LIMITS__QUEUE", "-1", "limits.queue"),
        ("PROGIMAGE_LIMITS__QUEUE", "[1", "limits.queue"),
        ("PROGIMAGE_SERVER__PORT", "true", "server.port"),
        ("PROGIMAGE_SOURCES__ALLOW_SVG", "maybe", "sources.allow_svg"),
        ("PROGIMAGE_OUTPUT__QUALITY__JPEG", "101", "output.quality.jpeg"),
        ("PROGIMAGE_OUTPUT__QUALITY", "{jpeg: 0}", "output.quality.jpeg"),
        # An empty variable is refused rather than silently meaning "no key".
        ("PROGIMAGE_SIGNING__KEY", "", "signing.key"),
    ],
)
def test_bad_env_names_the_key_and_variable(var: str, raw: str, needle: str) -> None:
    message = error_of({}, {var: raw})
    assert needle in message
    assert var in message


def test_message_example_from_the_brief() -> None:
    message = error_of({"limits": {"queue": "abc"}})
    assert message == "limits.queue: expected an integer >= 0, got 'abc'"


# --- validation ---------------------------------------------------------------------------------

BAD_VALUES = [
    ({"server": {"port": 0}}, "server.port"),
    ({"server": {"port": 65536}}, "server.port"),
    ({"server": {"port": "8080"}}, "server.port"),
    ({"server": {"port": True}}, "server.port"),
    ({"server": {"port": 80.5}}, "server.port"),
    ({"server": {"host": ""}}, "server.host"),
    ({"server": {"host": 127}}, "server.host"),
    ({"server": {"workers": -1}}, "server.workers"),
    ({"storage": {"backend": "ftp"}}, "storage.backend"),
    ({"storage": {"backend": "s3"}}, "storage.bucket"),
    ({"storage": {"backend": "s3", "bucket": ""}}, "storage.bucket"),
    ({"storage": {"path": None}}, "storage.path"),
    ({"storage": {"prefix": None}}, "storage.prefix"),
    ({"storage": {"endpoint_url": 5}}, "storage.endpoint_url"),
    ({"storage": {"consistency_s": -1}}, "storage.consistency_s"),
    ({"storage": {"previews": "sometimes"}}, "storage.previews"),
    ({"cache": {"memory_mb": -1}}, "cache.memory_mb"),
    ({"cache": {"memory_mb": False}}, "cache.memory_mb"),
    ({"cache": {"sources_mb": "lots"}}, "cache.sources_mb"),
    ({"cache": {"remote_ttl": -5}}, "cache.remote_ttl"),
    ({"cache": {"sources_in_store": "yes please"}}, "cache.sources_in_store"),
    ({"cache": {"results_in_store": 1}}, "cache.results_in_store"),
    ({"cache": {"results_store_mb": -1}}, "cache.results_store_mb"),
    ({"limits": {"max_upload_bytes": -1}}, "limits.max_upload_bytes"),
    ({"limits": {"max_source_bytes": "50MB"}}, "limits.max_source_bytes"),
    ({"limits": {"max_pixels": 0}}, "limits.max_pixels"),
    ({"limits": {"max_output_dimension": 0}}, "limits.max_output_dimension"),
    ({"limits": {"concurrency": -2}}, "limits.concurrency"),
    ({"limits": {"queue": "abc"}}, "limits.queue"),
    ({"limits": {"queue": True}}, "limits.queue"),
    ({"limits": {"fetch_timeout": 0}}, "limits.fetch_timeout"),
    ({"limits": {"fetch_timeout": -1.5}}, "limits.fetch_timeout"),
    ({"limits": {"fetch_timeout": float("nan")}}, "limits.fetch_timeout"),
    ({"limits": {"fetch_timeout": True}}, "limits.fetch_timeout"),
    ({"sources": {"allowed_hosts": 5}}, "sources.allowed_hosts"),
    ({"sources": {"allowed_hosts": ["ok", ""]}}, "sources.allowed_hosts"),
    ({"sources": {"allow_private_networks": "true"}}, "sources.allow_private_networks"),
    ({"sources": {"allow_svg": None}}, "sources.allow_svg"),
    ({"signing": {"key": ""}}, "signing.key"),
    ({"signing": {"key": 12345}}, "signing.key"),
    ({"signing": {"key": ["a", None]}}, "signing.key"),
    ({"signing": {"key": {"a": 1}}}, "signing.key"),
    ({"auth": {"tokens": [1]}}, "auth.tokens"),
    ({"output": {"format": "bmp"}}, "output.format"),
    ({"output": {"format": 1}}, "output.format"),
    ({"output": {"quality": {"jpeg": 0}}}, "output.quality.jpeg"),
    ({"output": {"quality": {"webp": 101}}}, "output.quality.webp"),
    ({"output": {"quality": {"avif": "high"}}}, "output.quality.avif"),
    ({"output": {"quality": 80}}, "output.quality"),
    ({"cors": {"allow_origins": [None]}}, "cors.allow_origins"),
    ({"limits": 5}, "limits"),
    ({"limits": ["queue", 1]}, "limits"),
]


@pytest.mark.parametrize(("data", "key"), BAD_VALUES)
def test_bad_value_names_the_key(data: dict, key: str) -> None:
    assert error_of(data).startswith(f"{key}:")


def test_s3_with_bucket_is_accepted() -> None:
    storage = from_mapping({"storage": {"backend": "s3", "bucket": "b"}}).storage
    assert (storage.backend, storage.bucket) == ("s3", "b")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"cache": {"memroy_mb": 1}}, "unknown key cache.memroy_mb"),
        ({"cache": {"memroy_mb": 1}}, "did you mean memory_mb?"),
        ({"signing": {"keys": ["a"]}}, "unknown key signing.keys"),
        ({"output": {"quality": {"png": 9}}}, "unknown key output.quality.png"),
        ({"limit": {"queue": 1}}, "unknown section limit"),
        ({"nonsense": {}}, "unknown section nonsense"),
    ],
)
def test_unknown_keys(data: dict, needle: str) -> None:
    assert needle in error_of(data)


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 8080\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"unknown key server\.prot"):
        load(path, env={})


# --- bad files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "server: [unclosed\n",
        "server:\n  port: 1\n port: 2\n",
        "key: @reserved\n",
        "\tserver: {}\n",
    ],
)
def test_invalid_yaml_names_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text, name="broken.yaml")
    with pytest.raises(ConfigError) as info:
        load(path, env={})
    assert str(path) in str(info.value)
    assert "invalid YAML" in str(info.value)


@pytest.mark.parametrize("text", ["- server\n- limits\n", "just a string\n", "42\n"])
def test_non_mapping_file_names_the_file(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text, name="list.yaml")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load(path, env={})


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="absent.yaml: cannot read"):
        load(path, env={})


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path)):
        load(tmp_path, env={})


def test_non_utf8_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"server: {host: caf\xe9}\n")
    with pytest.raises(ConfigError, match="latin1.yaml"):
        load(path, env={})


def test_from_mapping_rejects_non_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_mapping(["server"])  # type: ignore[arg-type]


# --- with_overrides -----------------------------------------------------------------------------


def test_with_overrides_returns_new_validated_config() -> None:
    base = Config()
    cfg = with_overrides(base, limits={"queue": 2}, signing={"key": ["a", "b"]})
    assert cfg.limits.queue == 2
    assert cfg.limits.max_pixels == base.limits.max_pixels
    assert cfg.signing.keys == ("a", "b")
    assert base.limits.queue == 64
    assert base.signing.keys == ()


def test_with_overrides_keeps_existing_values_and_nested_sections() -> None:
    base = from_mapping({"limits": {"queue": 5}, "output": {"quality": {"jpeg": 50}}})
    cfg = with_overrides(base, output={"quality": {"avif": 30}}, cache={"memory_mb": 0})
    assert cfg.limits.queue == 5
    assert cfg.output.quality == QualityConfig(jpeg=50, webp=80, avif=30)
    assert cfg.cache.memory_mb == 0


def test_with_overrides_accepts_section_objects() -> None:
    cfg = with_overrides(Config(), signing=SigningConfig(("k",)), limits=LimitsConfig(queue=1))
    assert cfg.signing.keys == ("k",)
    assert cfg.limits.queue == 1


def test_with_overrides_round_trips_every_section() -> None:
    cfg = from_mapping(
        {
            "storage": {"backend": "s3", "bucket": "b", "endpoint_url": "http://minio:9000"},
            "signing": {"key": ["x", "y"]},
            "sources": {"allowed_hosts": ["a.test"]},
            "output": {"format": "webp"},
        }
    )
    assert with_overrides(cfg) == cfg


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        ({"limits": {"queue": -1}}, "limits.queue"),
        ({"limits": {"qeue": 1}}, "unknown key limits.qeue"),
        ({"limitz": {"queue": 1}}, "unknown section limitz"),
        ({"storage": {"backend": "s3"}}, "storage.bucket"),
    ],
)
def test_with_overrides_validates(sections: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(Config(), **sections)
    assert needle in str(info.value)


def test_dialects_default_off_with_the_spec_prefixes() -> None:
    dialects = Config().dialects
    assert dialects.enabled() == {}
    assert (dialects.thumbor.prefix, dialects.imgproxy.prefix, dialects.imaginary.prefix) == (
        "/thumbor",
        "/imgproxy",
        "/imaginary",
    )


@pytest.mark.parametrize(
    ("sections", "needle"),
    [
        (
            {"signing": {"key": "k"}, "dialects": {"thumbor": {"enabled": True}}},
            "dialects.thumbor.key: required while signing.key is set",
        ),
        (
            {"signing": {"key": "k"}, "dialects": {"imaginary": {"enabled": True}}},
            "dialects.imaginary.key",
        ),
        ({"dialects": {"imgproxy": {"key": "zz", "salt": "00"}}}, "dialects.imgproxy.key"),
        ({"dialects": {"imgproxy": {"enabled": True, "key": "ab"}}}, "key and salt"),
        ({"dialects": {"thumbor": {"prefix": "thumbor/"}}}, "dialects.thumbor.prefix"),
        (
            {
                "dialects": {
                    "thumbor": {"enabled": True, "prefix": ""},
                    "imgproxy": {"enabled": True, "prefix": "/"},
                }
            },
            "is already dialects.thumbor's",
        ),
        ({"dialects": {"imgproxy": {"watermark": "logo.png"}}}, "dialects.imgproxy.watermark"),
    ],
)
def test_bad_dialect_settings_refuse_to_start(sections: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_mapping(sections)
    assert needle in str(info.value)


def test_a_dialect_with_its_own_key_starts_beside_signing() -> None:
    cfg = from_mapping(
        {
            "signing": {"key": "k"},
            "dialects": {"imgproxy": {"enabled": True, "key": "AB12", "salt": "cd34"}},
        }
    )
    assert cfg.dialects.imgproxy.key == "ab12"
    assert list(cfg.dialects.enabled()) == ["imgproxy"]
