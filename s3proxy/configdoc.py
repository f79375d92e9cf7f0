"""The configuration reference, generated from the config Structs.

``python -m s3proxy.configdoc > docs/configuration.md`` writes the page;
``python -m s3proxy.configdoc --check docs/configuration.md`` tells whether it drifted.

Everything comes from the code, so the page cannot disagree with it: the field names,
types, defaults and constraints from the msgspec Structs (``s3proxy.config.Config`` and
the settings Struct of every registered backend), the descriptions from the comment lines
(``#:`` or ``#``) directly above each field, or a ``#:`` comment at the end of its line,
read from the source with ``ast`` and ``tokenize`` because Structs keep no comments. A
``msgspec.Meta(description=...)`` on the field's type is used when it has no comment.
"""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import io
import json
import re
import sys
import tokenize
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from s3proxy.config import ENV_CONFIG_FILE, ENV_PLUGINS, ENV_PREFIX, Config

REGENERATE = "python -m s3proxy.configdoc > docs/configuration.md"

_NODEFAULT: Any = msgspec.NODEFAULT
_RST_LITERAL = re.compile(r"``(.+?)``")
_CODE_SPAN = re.compile(r"(`[^`]*`)")
# Meta constraints worth showing, with how to show them.
_CONSTRAINTS = {
    "gt": "> {}",
    "ge": ">= {}",
    "lt": "< {}",
    "le": "<= {}",
    "min_length": "length >= {}",
    "max_length": "length <= {}",
    "pattern": "matches `{}`",
}


@dataclass(slots=True)
class Row:
    """One setting: a line of a section's table."""

    key: str
    env: str
    type: str
    default: str
    description: str


@dataclass(slots=True)
class Section:
    """A TOML table (``[server]``) or array of tables (``[[auth.credentials]]``)."""

    header: str
    doc: str
    rows: list[Row] = field(default_factory=list)


# --- descriptions from the source ------------------------------------------------------


def _strip_comment(text: str) -> str:
    text = text.strip()
    text = text[2:] if text.startswith("#:") else text[1:]
    return text.strip()


@functools.cache
def _module_comments(module_name: str) -> dict[str, dict[str, str]]:
    """``{class qualname: {field: description}}`` for the classes of one module."""
    module = sys.modules.get(module_name)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):  # no source shipped: descriptions stay empty
        source = ""
    if not source:
        return {}
    lines = source.splitlines()
    comments = {
        tok.start[0]: tok.string
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type == tokenize.COMMENT
    }

    def is_comment_line(n: int) -> bool:
        return n in comments and lines[n - 1].lstrip().startswith("#")

    def describe(node: ast.AnnAssign) -> str:
        above: list[str] = []
        n = node.lineno - 1
        while n > 0 and is_comment_line(n):
            above.append(_strip_comment(comments[n]))
            n -= 1
        if above:
            return " ".join(reversed(above))
        for n in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            if n in comments and not is_comment_line(n) and comments[n].startswith("#:"):
                return _strip_comment(comments[n])
        return ""

    found: dict[str, dict[str, str]] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                found[prefix + node.name] = {
                    item.target.id: describe(item)
                    for item in node.body
                    if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                }
                visit(node.body, f"{prefix}{node.name}.")

    visit(ast.parse(source).body, "")
    return found


def field_description(struct: type[msgspec.Struct], name: str) -> str:
    """The comment documenting field ``name``, from the class (or base) that declares it."""
    for cls in struct.__mro__:
        if not (isinstance(cls, type) and issubclass(cls, msgspec.Struct)):
            continue
        fields = _module_comments(cls.__module__).get(cls.__qualname__)
        if fields is not None and name in fields:
            return fields[name]
    return ""


def _class_doc(struct: type[Any]) -> str:
    # Only the class's own docstring: inherited ones describe the base.
    doc = struct.__dict__.get("__doc__")
    return _RST_LITERAL.sub(r"`\1`", inspect.cleandoc(doc)) if isinstance(doc, str) else ""


# --- types and values ------------------------------------------------------------------


def _unwrap(tp: Any) -> tuple[Any, list[msgspec.Meta]]:
    metas: list[msgspec.Meta] = []
    while typing.get_origin(tp) is typing.Annotated:
        tp, *extra = typing.get_args(tp)
        metas.extend(m for m in extra if isinstance(m, msgspec.Meta))
    return tp, metas


def _is_struct(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, msgspec.Struct)


def _struct_list_item(tp: Any) -> type[msgspec.Struct] | None:
    tp, _ = _unwrap(tp)
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp) or (Any,)
        item, _ = _unwrap(item)
        if _is_struct(item):
            return typing.cast(type[msgspec.Struct], item)
    return None


def type_name(tp: Any) -> str:
    """A reader's name for a field type, in TOML terms, with its constraints."""
    tp, metas = _unwrap(tp)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        name = "any"
    elif tp is type(None):
        name = "unset"
    elif tp is bool:
        name = "boolean"
    elif tp is int:
        name = "integer"
    elif tp is float:
        name = "float"
    elif tp is str:
        name = "string"
    elif origin is typing.Literal:
        name = "one of " + ", ".join(f"`{json.dumps(a)}`" for a in args)
    elif origin in (list, set, frozenset, tuple):
        item = type_name(args[0]) if args else "any"
        name = f"list of {item}"
    elif origin is dict:
        value = _unwrap(args[1])[0] if len(args) == 2 else Any
        name = "table of tables" if typing.get_origin(value) is dict else "table"
        if name == "table" and value is not Any:
            name = f"table of {type_name(value)}"
    elif origin is typing.Union or isinstance(tp, types.UnionType):
        name = " or ".join(type_name(a) for a in args)
    elif _is_struct(tp):
        name = "table"
    else:
        name = getattr(tp, "__name__", str(tp))
    limits = [
        fmt.format(getattr(meta, attr))
        for meta in metas
        for attr, fmt in _CONSTRAINTS.items()
        if getattr(meta, attr) is not None
    ]
    return f"{name} ({', '.join(limits)})" if limits else name


def _meta_description(tp: Any) -> str:
    return next((m.description for m in _unwrap(tp)[1] if m.description), "")


def toml_value(value: Any) -> str:
    """``value`` written as TOML would (``unset`` for None, which TOML cannot spell)."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, msgspec.Struct):
        return toml_value(msgspec.to_builtins(value))
    return str(value)


def _default(info: msgspec.structs.FieldInfo) -> str:
    if info.default is not _NODEFAULT:
        return f"`{toml_value(info.default)}`"
    if info.default_factory is not _NODEFAULT:
        return f"`{toml_value(info.default_factory())}`"
    return "required"


def env_name(path: Sequence[str], tp: Any = None) -> str:
    """The environment variable that sets ``path`` (placeholders for table keys)."""
    name = ENV_PREFIX + "__".join(p.upper() for p in path)
    tp, _ = _unwrap(tp)
    if typing.get_origin(tp) is dict:
        args = typing.get_args(tp)
        nested = len(args) == 2 and typing.get_origin(_unwrap(args[1])[0]) is dict
        name += "__<NAME>__<KEY>" if nested else "__<KEY>"
    return name


# --- walking the tree ------------------------------------------------------------------


def own_fields_first(struct: type[msgspec.Struct]) -> list[msgspec.structs.FieldInfo]:
    """The fields of ``struct``, those it declares before those it inherits.

    msgspec puts inherited fields first; a reader of ``[backends.aws]`` wants ``bucket``
    before the settings every cloud shares.
    """
    mro = struct.__mro__

    def depth(info: msgspec.structs.FieldInfo) -> int:
        return next(
            (i for i, cls in enumerate(mro) if info.name in inspect.get_annotations(cls)),
            len(mro),
        )

    return sorted(msgspec.structs.fields(struct), key=depth)


def struct_sections(
    struct: type[msgspec.Struct],
    path: tuple[str, ...],
    *,
    header: str,
    doc: str = "",
    env: bool = True,
) -> list[Section]:
    """The section of ``struct`` at ``path`` followed by its nested sections.

    ``env`` is False under an array of tables, which environment variables cannot set.
    """
    section = Section(header=header, doc=doc or _class_doc(struct))
    nested: list[Section] = []
    key_prefix = ".".join(path) + "." if path else ""
    for info in own_fields_first(struct):
        sub = (*path, info.encode_name)
        tp, _ = _unwrap(info.type)
        if _is_struct(tp):
            nested += struct_sections(tp, sub, header=f"[{'.'.join(sub)}]", env=env)
            continue
        item = _struct_list_item(info.type)
        if item is not None:
            nested += struct_sections(
                item,
                (*sub[:-1], f"{sub[-1]}[]"),
                header=f"[[{'.'.join(sub)}]]",
                doc=field_description(struct, info.name) or _class_doc(item),
                env=False,
            )
            continue
        description = field_description(struct, info.name) or _meta_description(info.type)
        section.rows.append(
            Row(
                key=key_prefix + info.encode_name,
                env=f"`{env_name(sub, info.type)}`" if env else "(file only)",
                type=type_name(info.type),
                default=_default(info),
                description=description,
            )
        )
    return ([section] if section.rows else []) + nested


@dataclass(slots=True)
class BackendDoc:
    """What the reference says about one registered backend."""

    name: str
    description: str
    distribution: str
    settings: type[msgspec.Struct] | None


# The distributions this reference documents: the core and the cloud plugins shipped
# with it (an installed example or third-party plugin must not change the page).
DOCUMENTED = frozenset({"s3proxy", "s3proxy-aws", "s3proxy-azure", "s3proxy-gcp"})


def registered_backends() -> list[BackendDoc]:
    """The backends of the documented distributions (not S3PROXY_PLUGINS extras)."""
    from s3proxy.plugins import make_plugin_manager

    plugins = make_plugin_manager()
    dists = {p.name: p.distribution for p in plugins.plugins}
    return [
        BackendDoc(spec.name, spec.description, dists.get(spec.plugin, "?"), spec.config)
        for spec in sorted(plugins.backends.values(), key=lambda s: s.name)
        if dists.get(spec.plugin) in DOCUMENTED
    ]


def all_sections(backends: Sequence[BackendDoc]) -> Iterator[tuple[str, Section]]:
    """(chapter, section) pairs: the core tree, then one section per backend."""
    for section in struct_sections(Config, (), header="top level"):
        yield "core", section
    for b in backends:
        provided = f"Provided by `{b.distribution}`: {b.description}."
        if b.settings is None:
            yield "backends", Section(f"[backends.{b.name}]", provided + " No settings.")
            continue
        for section in struct_sections(
            b.settings, ("backends", b.name), header=f"[backends.{b.name}]"
        ):
            if section.header == f"[backends.{b.name}]":
                section.doc = f"{provided}\n\n{section.doc}".strip()
            yield "backends", section


# --- Markdown --------------------------------------------------------------------------


def md_inline(text: str) -> str:
    """Comment text as table-safe Markdown: ``x`` -> `x`, no stray HTML or pipes."""
    text = _RST_LITERAL.sub(r"`\1`", " ".join(text.split()))
    parts = _CODE_SPAN.split(text)
    for i, part in enumerate(parts):
        if not part.startswith("`"):
            part = part.replace("<", "&lt;")  # would start an HTML tag
        parts[i] = part.replace("|", "\\|")
    return "".join(parts)


_INTRO = f"""\
# Configuration reference

<!-- Generated from the config Structs by `{REGENERATE}`.
     Do not edit by hand: tests/test_configdoc.py fails when this page drifts. -->

Settings come from three sources, highest first:

1. environment variables `{ENV_PREFIX}<FIELD>`, nested fields joined by `__`
   (`{ENV_PREFIX}SERVER__PORT=9000`), lists comma separated
   (`{ENV_PREFIX}DISABLE_PLUGINS=aws,gcp`);
2. the TOML file named by `--config` or `{ENV_CONFIG_FILE}`;
3. the defaults below.

Unknown keys and wrong types stop start-up with an error that names the field;
`s3proxy config` prints the effective configuration with secrets redacted.
`{ENV_PLUGINS}` (comma separated module paths, like `--plugin`) loads plugin modules
that have no entry point. Fields marked "(file only)" sit in arrays of tables, which
environment variables cannot express.
"""

_BACKENDS_INTRO = """\
## Backends

`backend` names the default backend; `[backends.<name>]` holds each backend's settings,
validated by the settings Struct its plugin registered; `[buckets.<bucket>]` routes one
bucket to a backend (`backend = "<name>"`) with any of that backend's settings
overriding `[backends.<name>]` for that bucket. The backends below are those registered
by the plugins installed when this page was generated (`s3proxy plugins` lists yours).
"""


def _table(rows: Sequence[Row]) -> list[str]:
    out = [
        "| key | environment variable | type | default | description |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = (f"`{r.key}`", r.env, r.type, r.default, r.description)
        out.append("| " + " | ".join(md_inline(c) for c in cells) + " |")
    return out


def render(backends: Sequence[BackendDoc] | None = None) -> str:
    """The whole Markdown page."""
    if backends is None:
        backends = registered_backends()
    out = [_INTRO]
    chapter = ""
    for part, section in all_sections(backends):
        if part != chapter:
            chapter = part
            out.append(_BACKENDS_INTRO if part == "backends" else "## Core settings\n")
        title = section.header if section.header == "top level" else f"`{section.header}`"
        out.append(f"### {title}\n")
        if section.doc:
            out.append(section.doc.strip() + "\n")
        if section.rows:
            out.append("\n".join(_table(section.rows)) + "\n")
    return "\n".join(out).rstrip("\n") + "\n"


def undocumented(backends: Sequence[BackendDoc] | None = None) -> list[str]:
    """Keys that have no description (a comment above the field is missing)."""
    if backends is None:
        backends = registered_backends()
    return [r.key for _, s in all_sections(backends) for r in s.rows if not r.description]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m s3proxy.configdoc",
        description="Print the configuration reference (Markdown) generated from the code.",
    )
    parser.add_argument(
        "--check", metavar="FILE", help="exit 1 if FILE differs from the generated page"
    )
    args = parser.parse_args(argv)
    backends = registered_backends()
    page = render(backends)
    if args.check:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != page:
            print(f"{path} is out of date; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    missing = undocumented(backends)
    if missing:
        print(f"configdoc: no description for: {', '.join(missing)}", file=sys.stderr)
    sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
