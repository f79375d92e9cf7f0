"""Configuration loading: defaults, TOML file, environment, validation, redaction."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from s3proxy.config import (
    Config,
    ConfigError,
    convert,
    env_overrides,
    extra_plugins,
    load,
    raw_config,
    redacted,
)


def write(tmp_path: Path, text: str, name: str = "s3proxy.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def config_error(**kwargs: object) -> str:
    with pytest.raises(ConfigError) as info:
        load(**kwargs)  # type: ignore[arg-type]
    return str(info.value)


# -- defaults, file, environment --------------------------------------------------------


def test_defaults() -> None:
    cfg = load(environ={})
    assert cfg == Config()
    assert cfg.backend == "local"
    assert cfg.server.host == "127.0.0.1"
    assert cfg.server.port == 8080
    assert cfg.server.workers == 1
    assert cfg.server.shutdown_grace == 30.0
    assert cfg.s3.region == "us-east-1"
    assert cfg.logging.level == "info"
    assert cfg.logging.format == "auto"
    assert cfg.disable_plugins == []
    assert cfg.backends == {}


def test_environment_without_prefix_is_ignored() -> None:
    assert load(environ={"PORT": "1", "SERVER__PORT": "2", "s3proxy_backend": "x"}) == Config()


def test_file_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
backend = "memory"
disable_plugins = ["aws"]

[server]
host = "0.0.0.0"
port = 9001
shutdown_grace = 5

[s3]
region = "eu-west-1"

[logging]
level = "debug"
format = "json"

[backends.local]
path = "/srv/data"
""",
    )
    cfg = load(config_file=path, environ={})
    assert cfg.backend == "memory"
    assert cfg.disable_plugins == ["aws"]
    assert cfg.server.host == "0.0.0.0"
    assert cfg.server.port == 9001
    assert cfg.server.shutdown_grace == 5.0
    # Fields the file leaves out keep their defaults.
    assert cfg.server.workers == 1
    assert cfg.s3.region == "eu-west-1"
    assert cfg.logging.level == "debug"
    assert cfg.logging.format == "json"
    assert cfg.backends == {"local": {"path": "/srv/data"}}


def test_config_file_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9100\n")
    assert load(environ={"S3PROXY_CONFIG": path}).server.port == 9100


def test_config_file_argument_wins_over_environment(tmp_path: Path) -> None:
    chosen = write(tmp_path, "[server]\nport = 1111\n", "a.toml")
    other = write(tmp_path, "[server]\nport = 2222\n", "b.toml")
    assert load(config_file=chosen, environ={"S3PROXY_CONFIG": other}).server.port == 1111


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9001\nhost = "0.0.0.0"\n')
    cfg = load(config_file=path, environ={"S3PROXY_SERVER__PORT": "9000"})
    assert cfg.server.port == 9000
    assert isinstance(cfg.server.port, int)
    # Siblings from the file survive the override.
    assert cfg.server.host == "0.0.0.0"


def test_environment_values_are_converted() -> None:
    cfg = load(
        environ={
            "S3PROXY_BACKEND": "memory",
            "S3PROXY_SERVER__WORKERS": "4",
            "S3PROXY_SERVER__SHUTDOWN_GRACE": "2.5",
            "S3PROXY_LOGGING__LEVEL": "warning",
            "S3PROXY_S3__REGION": "ap-south-1",
        }
    )
    assert cfg.backend == "memory"
    assert cfg.server.workers == 4
    assert cfg.server.shutdown_grace == 2.5
    assert cfg.logging.level == "warning"
    assert cfg.s3.region == "ap-south-1"


def test_nested_backend_setting_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[backends.local]\npath = "/from/file"\nother = 1\n')
    cfg = load(config_file=path, environ={"S3PROXY_BACKENDS__LOCAL__PATH": "/from/env"})
    assert cfg.backends == {"local": {"path": "/from/env", "other": 1}}
    cfg = load(environ={"S3PROXY_BACKENDS__LOCAL__PATH": "/data"})
    assert cfg.backends == {"local": {"path": "/data"}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a,b", ["a", "b"]),
        ("a", ["a"]),
        (" a , b ,, c ", ["a", "b", "c"]),
        ("", []),
    ],
)
def test_comma_list_from_environment(value: str, expected: list[str]) -> None:
    assert load(environ={"S3PROXY_DISABLE_PLUGINS": value}).disable_plugins == expected


def test_environment_list_replaces_file_list(tmp_path: Path) -> None:
    path = write(tmp_path, 'disable_plugins = ["x", "y"]\n')
    cfg = load(config_file=path, environ={"S3PROXY_DISABLE_PLUGINS": "a,b"})
    assert cfg.disable_plugins == ["a", "b"]


def test_env_overrides_tree() -> None:
    tree = env_overrides(
        {
            "S3PROXY_SERVER__PORT": "9000",
            "S3PROXY_BACKENDS__LOCAL__PATH": "/d",
            "S3PROXY_DISABLE_PLUGINS": "a,b",
            # These steer start-up and are not part of the tree.
            "S3PROXY_CONFIG": "/etc/s3proxy.toml",
            "S3PROXY_PLUGINS": "my.plugin",
            "HOME": "/root",
        }
    )
    assert tree == {
        "server": {"port": "9000"},
        "backends": {"local": {"path": "/d"}},
        "disable_plugins": ["a", "b"],
    }


@pytest.mark.parametrize("name", ["S3PROXY_", "S3PROXY_SERVER__", "S3PROXY_SERVER____PORT"])
def test_empty_environment_segment(name: str) -> None:
    message = config_error(environ={name: "1"})
    assert name in message


def test_conflicting_environment_variables() -> None:
    message = config_error(environ={"S3PROXY_SERVER": "x", "S3PROXY_SERVER__PORT": "1"})
    assert "S3PROXY_SERVER__PORT" in message


def test_raw_config_is_unvalidated(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 1\n")
    assert raw_config(path, {"S3PROXY_SERVER__HOST": "h"}) == {"server": {"port": 1, "host": "h"}}


def test_extra_plugins() -> None:
    assert extra_plugins({}) == []
    assert extra_plugins({"S3PROXY_PLUGINS": " a.b , c ,"}) == ["a.b", "c"]


# -- validation errors -------------------------------------------------------------------


def test_unknown_key_in_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nprot = 9000\n")
    message = config_error(config_file=path, environ={})
    assert "server" in message
    assert "prot" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'bakend = "memory"\n')
    assert "bakend" in config_error(config_file=path, environ={})


def test_unknown_key_from_environment() -> None:
    message = config_error(environ={"S3PROXY_LOGGING__COLOUR": "yes"})
    assert "logging" in message
    assert "colour" in message


def test_wrong_type_from_environment() -> None:
    message = config_error(environ={"S3PROXY_SERVER__PORT": "eighty"})
    assert "server.port" in message
    assert "int" in message


@pytest.mark.parametrize(
    ("toml", "field", "expected"),
    [
        ('[server]\nport = "abc"\n', "server.port", "int"),
        ("[server]\nport = [1]\n", "server.port", "int"),
        ('[server]\nshutdown_grace = "soon"\n', "server.shutdown_grace", "float"),
        ("backend = 3\n", "backend", "str"),
        ('disable_plugins = "aws"\n', "disable_plugins", "array"),
        ('server = "x"\n', "server", "object"),
        ('[logging]\nlevel = "loud"\n', "logging.level", "loud"),
        # msgspec does not name dict keys: "backends[...]".
        ("[backends]\nlocal = 1\n", "backends[...]", "object"),
    ],
)
def test_wrong_type_in_file(tmp_path: Path, toml: str, field: str, expected: str) -> None:
    path = write(tmp_path, toml)
    message = config_error(config_file=path, environ={})
    assert f"invalid config {field}:" in message
    assert expected in message


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_workers_must_be_positive(workers: str) -> None:
    assert "server.workers" in config_error(environ={"S3PROXY_SERVER__WORKERS": workers})


def test_convert_names_the_field_under_where() -> None:
    class Settings(msgspec.Struct, forbid_unknown_fields=True):
        path: str = "."

    assert convert({"path": "/x"}, Settings, "local") == Settings(path="/x")
    with pytest.raises(ConfigError, match=r"invalid config local\.path: Expected `str`"):
        convert({"path": 1}, Settings, "local")
    with pytest.raises(ConfigError, match=r"invalid config local: .*unknown field `nope`"):
        convert({"nope": 1}, Settings, "local")


# -- file errors -------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    message = config_error(config_file=path, environ={})
    assert path in message
    assert "not found" in message


def test_missing_file_named_by_environment(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    assert path in config_error(environ={"S3PROXY_CONFIG": path})


@pytest.mark.parametrize(
    "text", ["[server\nport = 1\n", "port = \n", "a = 1\na = 2\n", '[server]\nhost = "x\n']
)
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    message = config_error(config_file=path, environ={})
    assert path in message
    assert "invalid TOML" in message


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('region = "caf\u00e9"\n'.encode("latin-1"))
    message = config_error(config_file=str(path), environ={})
    assert "invalid TOML" in message


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    message = config_error(config_file=str(tmp_path), environ={})
    assert str(tmp_path) in message


# -- redaction ---------------------------------------------------------------------------


def test_redacted_hides_secret_looking_fields() -> None:
    data = {
        "backend": "aws",
        "server": {"host": "0.0.0.0", "port": 8080},
        "disable_plugins": ["gcp"],
        "backends": {
            "aws": {
                "region": "eu-west-1",
                "bucket_prefix": "team-",
                "access_key_id": "AKIAEXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI",
                "session_token": "tok",
                "endpoint": "https://s3.example",
            },
            "azure": {
                "account": "acct",
                "sas_token": "sv=2020",
                "connection_string": "DefaultEndpointsProtocol=https",
                "client_secret": "shh",
                "Password": "hunter2",
                "credentials_file": "/etc/creds.json",
                "tokens": ["t1", "t2"],
            },
        },
    }
    out = redacted(data)
    aws = out["backends"]["aws"]
    assert aws["access_key_id"] == "***"
    assert aws["secret_access_key"] == "***"
    assert aws["session_token"] == "***"
    assert aws["region"] == "eu-west-1"
    assert aws["bucket_prefix"] == "team-"
    assert aws["endpoint"] == "https://s3.example"
    azure = out["backends"]["azure"]
    for name in ("sas_token", "connection_string", "client_secret", "Password"):
        assert azure[name] == "***", name
    assert azure["credentials_file"] == "***"
    assert azure["tokens"] == ["***", "***"]
    assert azure["account"] == "acct"
    assert out["server"] == {"host": "0.0.0.0", "port": 8080}
    assert out["disable_plugins"] == ["gcp"]
    assert out["backend"] == "aws"
    # The input is not modified.
    assert data["backends"]["aws"]["secret_access_key"] == "wJalrXUtnFEMI"  # type: ignore[index]


def test_redacted_leaves_unset_secrets_visible() -> None:
    # An empty or missing secret is shown as such: "not configured" is useful to see.
    assert redacted({"password": "", "token": None}) == {"password": "", "token": None}


def test_redacted_on_loaded_config() -> None:
    cfg = load(environ={"S3PROXY_BACKENDS__X__API_TOKEN": "abc", "S3PROXY_BACKENDS__X__URL": "u"})
    out = redacted(msgspec.to_builtins(cfg))
    assert out["backends"]["x"] == {"api_token": "***", "url": "u"}
    assert out["server"]["port"] == 8080
