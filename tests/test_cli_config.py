"""Configuration discovery of every `progimage` command (SPEC §14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxy import cli, signing
from proxy import config as config_module

PATH = "/resize/10x/" + "a" * 32


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty current directory and an environment without PROGIMAGE_* variables."""
    for name in [n for n in os.environ if n.startswith("PROGIMAGE_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_sign_reads_config_yaml_of_the_current_directory(workdir) -> None:
    # The installed command, run as a user would, in a directory holding the key.
    (workdir / "config.yaml").write_text("signing: {key: from-the-directory}\n")
    command = Path(sys.executable).parent / "progimage"
    result = subprocess.run(
        [str(command), "sign", PATH], capture_output=True, text=True, timeout=30, cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == signing.signed_path(PATH, "from-the-directory")


def test_progimage_config_names_another_file(workdir, monkeypatch, capsys) -> None:
    (workdir / "config.yaml").write_text("signing: {key: local}\n")
    other = workdir / "elsewhere.yaml"
    other.write_text("signing: {key: named}\n")
    monkeypatch.setenv("PROGIMAGE_CONFIG", str(other))
    assert cli.main(["sign", PATH]) == 0
    assert capsys.readouterr().out.strip() == signing.signed_path(PATH, "named")


def test_explicit_config_wins_over_both(workdir, monkeypatch, capsys) -> None:
    (workdir / "config.yaml").write_text("signing: {key: local}\n")
    named = workdir / "named.yaml"
    named.write_text("signing: {key: named}\n")
    given = workdir / "given.yaml"
    given.write_text("signing: {key: given}\n")
    monkeypatch.setenv("PROGIMAGE_CONFIG", str(named))
    assert cli.main(["url", "a" * 32, "--resize", "10x", "--config", str(given)]) == 0
    assert capsys.readouterr().out.strip() == signing.signed_path(PATH, "given")


def test_environment_overrides_apply_over_the_discovered_file(workdir, monkeypatch, capsys):
    (workdir / "config.yaml").write_text("signing: {key: local}\n")
    monkeypatch.setenv("PROGIMAGE_SIGNING__KEY", "from-env")
    assert cli.main(["sign", PATH]) == 0
    assert capsys.readouterr().out.strip() == signing.signed_path(PATH, "from-env")


def test_without_any_file_the_defaults_apply(workdir, capsys) -> None:
    assert cli.main(["sign", PATH]) == 2
    assert "signing.key is not set" in capsys.readouterr().err
    assert cli.main(["check-config"]) == 0


def test_a_bad_discovered_file_stops_every_command_naming_the_key(workdir, capsys) -> None:
    (workdir / "config.yaml").write_text("limits: {queue: lots}\n")
    for argv in (["check-config"], ["sign", PATH], ["url", "a" * 32], ["serve"]):
        assert cli.main(argv) == 2, argv
        assert "limits.queue" in capsys.readouterr().err


def test_a_missing_named_file_is_an_error_not_the_defaults(workdir, monkeypatch, capsys):
    (workdir / "config.yaml").write_text("signing: {key: local}\n")
    monkeypatch.setenv("PROGIMAGE_CONFIG", str(workdir / "nope.yaml"))
    assert cli.main(["sign", PATH]) == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "cannot read config file" in err


def test_command_variables_are_not_taken_for_overrides(workdir) -> None:
    env = {"PROGIMAGE_CONFIG": "x.yaml", "PROGIMAGE_TOKEN": "t", "PROGIMAGE_LIMITS__QUEUE": "3"}
    assert config_module.load(None, env).limits.queue == 3
    with pytest.raises(config_module.ConfigError, match="PROGIMAGE_TOKN"):
        config_module.load(None, {"PROGIMAGE_TOKN": "t"})


def test_discover_prefers_explicit_then_variable_then_directory(tmp_path) -> None:
    assert config_module.discover(None, {}, tmp_path) is None
    (tmp_path / "config.yaml").write_text("{}\n")
    assert config_module.discover(None, {}, tmp_path) == str(tmp_path / "config.yaml")
    assert config_module.discover(None, {"PROGIMAGE_CONFIG": "b.yaml"}, tmp_path) == "b.yaml"
    assert config_module.discover("a.yaml", {"PROGIMAGE_CONFIG": "b.yaml"}, tmp_path) == "a.yaml"
    # A directory called config.yaml is not a config file.
    other = tmp_path / "sub"
    (other / "config.yaml").mkdir(parents=True)
    assert config_module.discover(None, {}, other) is None
