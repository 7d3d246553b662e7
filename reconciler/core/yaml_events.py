"""The careful YAML reader: parser events to plain data, every problem reported with its line.

``reconciler.core.yamlsafe`` says why there are two readers; this is the reference one, used for
every file the quick reader gives up on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events

from reconciler.core.errors import Diagnostic
from reconciler.core.yamlsafe import (
    _RESOLVER,
    _TYPED,
    MAX_DEPTH,
    MAX_PROBLEMS,
    Loc,
    YamlDocument,
    _too_deep,
)


def _tag_text(tag: str) -> str:
    """A tag as it was written (``!!str``, ``!foo``), cut short: it is the file's text."""
    text = "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,") else tag
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class _Frame:
    """A mapping or list being built.

    ``key`` is the pending mapping key with its line; None while a key is expected. A refused
    key is pending as ``(None, line)``: its value is read and dropped.
    """

    path: Loc
    data: dict[str, Any] | list[Any]
    line: int
    key: tuple[str | None, int] | None = None


_NOWHERE: Loc = ("\0",)  # path of data under a refused key; never asked for


@dataclass
class Builder:
    """Turns parser events into plain data, recording lines and problems as it goes."""

    filename: str
    documents: list[YamlDocument] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)
    stack: list[_Frame] = field(default_factory=list)
    lines: dict[Loc, int] = field(default_factory=dict)
    root: Any = None
    doc_line: int = 1
    stopped: bool = False  # nested too deep: the rest of the file is not read
    repeated: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (index, count)

    def feed(self, event: events.Event) -> None:
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, events.DocumentStartEvent):
            self.lines, self.root, self.doc_line = {}, None, line
        elif isinstance(event, events.DocumentEndEvent):
            line = self.lines.get((), self.doc_line)  # where its content starts, as the quick
            self.documents.append(YamlDocument(self.root, self.lines, line))  # reader says
        elif isinstance(event, events.AliasEvent):
            self._once(
                "alias",
                line,
                "an alias (*name) is not allowed; write the value out "
                "instead of referring to an anchor",
            )
            self._attach(None, line)
        elif isinstance(event, events.NodeEvent):
            self._node(event, line)
        elif isinstance(event, events.CollectionEndEvent):
            frame = self.stack.pop()
            self._attach(frame.data, frame.line)

    def _node(self, event: events.NodeEvent, line: int) -> None:
        if event.anchor is not None:
            self._once(
                "anchor",
                line,
                "an anchor (&name) is not allowed; anchors and aliases "
                "are refused, write each value out",
            )
        tag = getattr(event, "tag", None)
        if tag is not None:
            self._once(
                f"tag {tag}",
                line,
                f"the tag {_tag_text(tag)} is not allowed; remove it and write a plain "
                "value (text, number, true/false, list or mapping)",
            )
        if isinstance(event, events.ScalarEvent):
            self._attach(_scalar(event), line)
        elif len(self.stack) >= MAX_DEPTH:
            self._add(line, _too_deep())
            self.stopped = True
        else:
            empty: dict[str, Any] | list[Any] = (
                {} if isinstance(event, events.MappingStartEvent) else []
            )
            self.stack.append(_Frame(self._child_path(), empty, line))

    def _child_path(self) -> Loc:
        """Path of the node that comes next (the top frame's next item or pending key's value)."""
        if not self.stack:
            return ()
        parent = self.stack[-1]
        if isinstance(parent.data, list):
            return (*parent.path, len(parent.data))
        if parent.key is None or parent.key[0] is None:
            return _NOWHERE  # a key that is itself a collection: refused when it is attached
        return (*parent.path, parent.key[0])

    def _attach(self, value: Any, line: int) -> None:
        if not self.stack:
            self.root = value
            self.lines[()] = line
            return
        parent = self.stack[-1]
        if isinstance(parent.data, list):
            self.lines[(*parent.path, len(parent.data))] = line
            parent.data.append(value)
        elif parent.key is None:
            self._take_key(parent, value, line)
        else:
            key = parent.key[0]
            parent.key = None
            if key is not None:
                parent.data[key] = value

    def _take_key(self, parent: _Frame, key: Any, line: int) -> None:
        assert isinstance(parent.data, dict)
        parent.key = (None, line)
        if not isinstance(key, str):
            self._add(
                line,
                f"the key {_describe_key(key)} is not text; mapping keys must be "
                "text: put it in quotes",
            )
        elif key in parent.data:
            first = self.lines.get((*parent.path, key), line)
            self._add(
                line,
                f"duplicate key {key!r} (first at line {first}, again at line "
                f"{line}); keep only one",
            )
        else:
            parent.key = (key, line)
            self.lines[(*parent.path, key)] = line

    def _add(self, line: int | None, message: str) -> None:
        self.problems.append(Diagnostic(self.filename, line, message))

    def _once(self, kind: str, line: int, message: str) -> None:
        """Report a repeated kind of problem once per file, with a count, to stay readable."""
        if kind in self.repeated:
            index, count = self.repeated[kind]
            self.repeated[kind] = (index, count + 1)
            return
        self.repeated[kind] = (len(self.problems), 1)
        self._add(line, message)

    def finish(self) -> list[Diagnostic]:
        """The problems found, repeated kinds counted, capped at ``MAX_PROBLEMS``."""
        for index, count in self.repeated.values():
            if count > 1:
                d = self.problems[index]
                self.problems[index] = Diagnostic(
                    d.file, d.line, f"{d.message} (first of {count} in this file)"
                )
        if len(self.problems) > MAX_PROBLEMS:
            extra = len(self.problems) - MAX_PROBLEMS
            self.problems = [
                *self.problems[:MAX_PROBLEMS],
                Diagnostic(self.filename, None, f"... and {extra} more problems"),
            ]
        return self.problems


def _scalar(event: events.ScalarEvent) -> Any:
    """The plain value of a scalar, typed the way the safe loader would (YAML 1.1 rules)."""
    if event.tag is not None:
        return event.value  # refused already; keep the text so building can go on
    tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
    construct = _TYPED.get(tag)
    if construct is None:
        return event.value
    return construct(yaml.ScalarNode(tag, event.value))


def _describe_key(key: Any) -> str:
    if key is None:
        return "null (empty or ~)"
    if isinstance(key, bool):
        return f"{str(key).lower()} (read as a boolean)"
    if isinstance(key, int | float):
        return f"{key} (read as a number)"
    if isinstance(key, Sequence):
        return "(a list)"
    return "(a mapping)"
