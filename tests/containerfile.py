"""A small Containerfile reader for the tests (no container engine runs in CI)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTAINERFILE = ROOT / "Containerfile"


@dataclass
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str
    line: int

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form argument (ENTRYPOINT, CMD), else None."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            _, _, text = text.partition(" CMD ")
        try:
            value = json.loads(text.strip())
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Containerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def resolve(self, text: str) -> str:
        """Substitute global ARG defaults (``${NAME}`` / ``$NAME``)."""
        return re.sub(
            r"\$\{(\w+)\}|\$(\w+)",
            lambda m: self.global_args.get(m.group(1) or m.group(2), m.group(0)),
            text,
        )


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: continuation lines joined, comment lines dropped."""
    out: list[Instruction] = []
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may also sit between continuation lines
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1].strip())
            continue
        buffer.append(line)
        keyword, _, args = " ".join(buffer).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        buffer = []
    assert not buffer, "Containerfile ends inside a continued line"
    return out


def parse(path: Path = CONTAINERFILE) -> Containerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions(path.read_text(encoding="utf-8")):
        if ins.keyword == "FROM":
            words = ins.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else ""
            stages.append(Stage(image=words[0], name=name))
        elif not stages:
            assert ins.keyword == "ARG", f"line {ins.line}: {ins.keyword} before FROM"
            key, _, default = ins.args.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
        else:
            stages[-1].instructions.append(ins)
    return Containerfile(global_args, stages)


def run_words(ins: Instruction) -> list[str]:
    """The words of a shell-form RUN (for looking at the commands it runs)."""
    return shlex.split(ins.args)
