"""The s3proxy command as a user runs it (subprocesses, real environment handling)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import s3_client, start_proxy, stop_proxy

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("S3PROXY_")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "s3proxy", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
    )


def test_plugins_lists_builtin_and_workspace_plugins() -> None:
    result = run("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["builtin"]["backends"] == ["local", "memory"]
    assert plugins["builtin"]["distribution"] == "s3proxy"
    for cloud in ("aws", "azure", "gcp"):
        assert plugins[cloud]["distribution"] == f"s3proxy-{cloud}"
    text = run("plugins")
    assert "backend local: files in a local directory" in text.stdout


def test_disable_plugins_env() -> None:
    result = run("plugins", "--json", env={"S3PROXY_DISABLE_PLUGINS": "aws,gcp"})
    names = [p["name"] for p in json.loads(result.stdout)]
    assert "aws" not in names and "gcp" not in names
    assert "azure" in names and "builtin" in names


def test_extra_plugin_by_option_and_env() -> None:
    result = run("plugins", "--json", "--plugin", "tests.plugin_samples.extra_backend")
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["tests.plugin_samples.extra_backend"]["backends"] == ["extra"]
    result = run(
        "config",
        env={"S3PROXY_PLUGINS": "tests.plugin_samples.extra_backend", "S3PROXY_BACKEND": "extra"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backends"]["extra"]["label"] == "extra"


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("tests.plugin_samples.broken_import", "failed to load: ModuleNotFoundError"),
        ("tests.plugin_samples.duplicate_backend", "both register backend 'memory'"),
        ("tests.plugin_samples.misspelled_hook", "register_backend"),
        ("tests.plugin_samples.not_there", "failed to load: ModuleNotFoundError"),
    ],
)
def test_broken_plugin_is_one_clear_line(module: str, expected: str) -> None:
    result = run("plugins", "--plugin", module)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("s3proxy: error: plugin")
    assert module.rsplit(".", 1)[-1] in lines[0] or module in lines[0]
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "toml", "expected"),
    [
        ({"S3PROXY_SERVER__PORT": "eighty"}, None, "server.port: Expected `int`"),
        ({"S3PROXY_NOPE": "1"}, None, "nope"),
        ({}, "[server]\nprot = 1\n", "server: Object contains unknown field `prot`"),
        ({}, "backend = 3\n", "backend: Expected `str`"),
        ({"S3PROXY_BACKEND": "nosuch"}, None, "unknown backend 'nosuch'"),
        (
            {"S3PROXY_BACKENDS__LOCAL__PATHH": "/x"},
            None,
            "backends.local: Object contains unknown field `pathh`",
        ),
        ({"S3PROXY_BACKENDS__NOSUCH__X": "1"}, None, "backends.nosuch: no plugin provides it"),
        ({}, "this is not toml", "invalid TOML"),
    ],
)
def test_invalid_config_exits_2(
    tmp_path: Path, env: dict[str, str], toml: str | None, expected: str
) -> None:
    args = ["config"]
    if toml is not None:
        path = tmp_path / "s3proxy.toml"
        path.write_text(toml)
        args += ["--config", str(path)]
    result = run(*args, env=env)
    assert result.returncode == 2, result.stdout
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    # serve validates the same way before starting any worker
    assert run("serve", *args[1:], env=env).returncode == 2


def test_config_precedence_and_redaction(tmp_path: Path) -> None:
    path = tmp_path / "s3proxy.toml"
    path.write_text(
        '[server]\nport = 9001\nhost = "0.0.0.0"\n\n[backends.extra]\naccess_secret = "hunter2"\n'
        '\n[auth]\naccess_key_id = "AKIDEXAMPLE"\nsecret_access_key = "wJalrXUtnFEMI"\n'
    )
    result = run(
        "config",
        "--config",
        str(path),
        "--plugin",
        "tests.plugin_samples.extra_backend",
        env={"S3PROXY_SERVER__PORT": "9002"},
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["server"]["port"] == 9002  # env over file
    assert data["server"]["host"] == "0.0.0.0"  # file over default
    assert data["backend"] == "local"
    assert data["backends"]["local"]["path"] == "./data"
    assert data["backends"]["extra"]["access_secret"] == "***"
    assert data["auth"]["secret_access_key"] == "***"
    assert "hunter2" not in result.stdout
    assert "wJalrXUtnFEMI" not in result.stdout


def test_serve_a_third_party_backend(tmp_path: Path) -> None:
    server = start_proxy(
        tmp_path,
        "extra",
        env={"S3PROXY_PLUGINS": "tests.plugin_samples.extra_backend", "PYTHONPATH": str(ROOT)},
    )
    try:
        s3 = s3_client(server.endpoint)
        s3.create_bucket(Bucket="third-party")
        s3.put_object(Bucket="third-party", Key="k", Body=b"from a plugin backend")
        assert (
            s3.get_object(Bucket="third-party", Key="k")["Body"].read() == b"from a plugin backend"
        )
    finally:
        stop_proxy(server)


def test_refuses_public_bind_without_credentials() -> None:
    result = run("serve", "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "refusing to serve on 0.0.0.0 without credentials" in result.stderr
    # Explicit anonymous mode is a choice the operator may make.
    ok = run("config", env={"S3PROXY_SERVER__HOST": "0.0.0.0", "S3PROXY_AUTH__ANONYMOUS": "read"})
    assert ok.returncode == 0, ok.stderr
