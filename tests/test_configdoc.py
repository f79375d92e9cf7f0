"""The generated configuration reference (s3proxy/configdoc.py, docs/configuration.md)."""

from __future__ import annotations

import difflib
import importlib.metadata as md
import importlib.util
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest

from s3proxy import config as config_mod
from s3proxy import configdoc
from s3proxy.configdoc import BackendDoc, Row

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "configuration.md"
WORKSPACE_PLUGINS = {"aws", "azure", "gcp"}


def test_docs_configuration_md_is_current() -> None:
    installed = {ep.name for ep in md.entry_points(group="s3proxy")}
    if not WORKSPACE_PLUGINS.issubset(installed):
        # The page documents the workspace plugins' backends too; without them the
        # generated page legitimately differs.
        pytest.skip(f"needs the workspace plugins installed (uv sync --all-packages): {installed}")
    expected = configdoc.render()
    current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
    if current != expected:
        diff = "".join(
            list(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    expected.splitlines(keepends=True),
                    "docs/configuration.md",
                    "generated",
                )
            )[:60]
        )
        pytest.fail(
            "docs/configuration.md is out of date with the config Structs; regenerate it with\n"
            f"    {configdoc.REGENERATE}\n\n{diff}",
            pytrace=False,
        )


def _struct_paths(struct: type[msgspec.Struct], prefix: str = "") -> Iterator[str]:
    for info in msgspec.structs.fields(struct):
        key = prefix + info.encode_name
        tp = info.type
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
            yield from _struct_paths(tp, key + ".")
        elif configdoc._struct_list_item(tp) is not None:
            item = configdoc._struct_list_item(tp)
            assert item is not None
            yield from _struct_paths(item, key + "[].")
        else:
            yield key


def _rows(backends: list[BackendDoc] | None = None) -> dict[str, Row]:
    return {r.key: r for _, s in configdoc.all_sections(backends or []) for r in s.rows}


def test_every_core_field_has_a_row_and_every_backend_a_section() -> None:
    rows = _rows(configdoc.registered_backends())
    missing = [p for p in _struct_paths(config_mod.Config) if p not in rows]
    assert not missing, f"fields missing from the reference: {missing}"
    page = configdoc.render()
    for backend in configdoc.registered_backends():
        assert f"### `[backends.{backend.name}]`" in page
        if backend.settings is not None:
            for info in msgspec.structs.fields(backend.settings):
                assert f"backends.{backend.name}.{info.encode_name}" in rows


def _set(tree: dict[str, Any], key: str) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node[part]
    return node


def test_documented_env_names_set_the_documented_field() -> None:
    # The env column must be what config.env_overrides actually parses.
    checked = 0
    for row in _rows().values():
        env = row.env.strip("`")
        if "<" in env or "(file only)" in row.env:
            continue
        value = "a,b" if row.type.startswith("list") else "1"
        tree = config_mod.env_overrides({env: value})
        expected: Any = ["a", "b"] if row.type.startswith("list") else "1"
        assert _set(tree, row.key) == expected, row
        checked += 1
    assert checked >= 20


def test_documented_defaults_are_valid_toml_equal_to_the_struct_defaults() -> None:
    defaults = msgspec.to_builtins(config_mod.Config())
    for row in _rows().values():
        if row.default in ("required", "`unset`") or "[]" in row.key:
            continue  # TOML has no null; arrays of tables have no default entry
        literal = row.default.strip("`")
        parsed = tomllib.loads(f"v = {literal}")["v"]
        assert parsed == _set(defaults, row.key), row


SAMPLE = '''
from __future__ import annotations

from typing import Annotated, Literal

import msgspec


class Base(msgspec.Struct, kw_only=True):
    #: Inherited, documented in the base.
    shared: int = 1


class Item(msgspec.Struct, kw_only=True):
    """One entry of an array of tables."""

    #: Needed.
    name: str


class Inner(msgspec.Struct, kw_only=True):
    # A plain comment also documents.
    # It may span lines.
    depth: float = 2.5


class Sample(Base, kw_only=True):
    """Sample settings."""

    #: Choose one.
    mode: Literal["a", "b"] = "a"

    undocumented: bool = False
    timeout: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0  #: Inline doc | with a pipe.
    described: Annotated[str, msgspec.Meta(description="From Meta <here>.")] = "x"
    tags: list[str] = msgspec.field(default_factory=lambda: ["t"])
    extra: dict[str, str] = {}
    inner: Inner = msgspec.field(default_factory=Inner)
    items: list[Item] = msgspec.field(default_factory=list)
'''


@pytest.fixture
def sample(tmp_path: Path) -> Iterator[ModuleType]:
    name = "s3proxy_configdoc_sample"
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(SAMPLE), encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[name]
    configdoc._module_comments.cache_clear()


def test_sections_rows_and_descriptions_from_comments(sample: ModuleType) -> None:
    sections = configdoc.struct_sections(sample.Sample, ("backends", "demo"), header="[demo]")
    assert [s.header for s in sections] == [
        "[demo]",
        "[backends.demo.inner]",
        "[[backends.demo.items]]",
    ]
    top, inner, items = sections
    assert top.doc == "Sample settings."
    rows = {r.key.rsplit(".", 1)[1]: r for r in top.rows}
    # Fields the class declares come before the inherited ones.
    assert list(rows) == [
        "mode",
        "undocumented",
        "timeout",
        "described",
        "tags",
        "extra",
        "shared",
    ]
    assert rows["mode"].description == "Choose one."
    assert rows["mode"].type == 'one of `"a"`, `"b"`'
    assert rows["mode"].env == "`S3PROXY_BACKENDS__DEMO__MODE`"
    assert rows["undocumented"].description == ""
    assert rows["timeout"].description == "Inline doc | with a pipe."
    assert rows["timeout"].type == "float (> 0, <= 60)"
    assert rows["described"].description == "From Meta <here>."
    assert rows["tags"].type == "list of string"
    assert rows["tags"].default == '`["t"]`'
    assert rows["extra"].env == "`S3PROXY_BACKENDS__DEMO__EXTRA__<KEY>`"
    assert rows["extra"].type == "table of string"
    assert rows["shared"].description == "Inherited, documented in the base."
    assert inner.rows[0].description == "A plain comment also documents. It may span lines."
    assert inner.rows[0].key == "backends.demo.inner.depth"
    assert items.doc == "One entry of an array of tables."
    assert items.rows[0].key == "backends.demo.items[].name"
    assert items.rows[0].env == "(file only)"
    assert items.rows[0].default == "required"


def test_render_escapes_table_cells_and_lists_backends(sample: ModuleType) -> None:
    backends = [
        BackendDoc("demo", "a demo store", "demo-dist", sample.Sample),
        BackendDoc("plain", "no settings here", "demo-dist", None),
    ]
    page = configdoc.render(backends)
    assert "Provided by `demo-dist`: a demo store." in page
    assert "### `[backends.plain]`\n\nProvided by `demo-dist`: no settings here. No settings." in (
        page
    )
    line = next(x for x in page.splitlines() if x.startswith("| `backends.demo.timeout`"))
    assert line.count(" | ") == 4  # five cells: the pipe in the text is escaped
    assert "Inline doc \\| with a pipe." in line
    described = next(x for x in page.splitlines() if "backends.demo.described" in x)
    assert "From Meta &lt;here>." in described
    assert page.endswith("No settings.\n")


def test_md_inline_converts_rst_literals_and_keeps_code_spans() -> None:
    text = configdoc.md_inline("see ``a<b>`` or <b>, x | y")
    assert text == "see `a<b>` or &lt;b>, x \\| y"


@pytest.mark.parametrize(
    "value",
    ['x"y', 0, 1.5, True, ["GET", "PUT"], {}, {"a": 1}, 5 * 1024**3],
)
def test_toml_value_round_trips(value: Any) -> None:
    assert tomllib.loads(f"v = {configdoc.toml_value(value)}")["v"] == value


def test_check_reports_drift_with_the_command_to_regenerate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("# old\n", encoding="utf-8")
    assert configdoc.main(["--check", str(stale)]) == 1
    assert configdoc.REGENERATE in capsys.readouterr().err
    stale.write_text(configdoc.render(), encoding="utf-8")
    assert configdoc.main(["--check", str(stale)]) == 0


def test_module_entry_point_prints_the_page() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "s3proxy.configdoc"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == configdoc.render()
