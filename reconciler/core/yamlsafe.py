"""A YAML loader for files written by people we do not trust.

PyYAML's ``load`` builds Python objects from tags and silently keeps the last of two duplicate
keys; its alias expansion lets a 1 KiB file grow to gigabytes (billion laughs). Manifests are
data, so this loader builds plain data itself and never constructs anything from a tag. Aliases
are never expanded: they are refused, as are anchors, explicit tags, duplicate keys, non-text
keys, nesting deeper than ``MAX_DEPTH`` and files over ``MAX_BYTES``.

Two readers give the same answer:

- the *quick* one lets the parser's own composer (libyaml's, in C) build the node tree and
  walks it once. It runs only on files without a ``&``, ``*`` or ``!`` byte anywhere (so
  without anchors, aliases or tags: each needs its indicator character, in every encoding
  PyYAML reads), stops the composer past ``MAX_DEPTH`` levels, and gives up at the first
  duplicate or non-text key or syntax error. It never reports anything: giving up hands the
  file to
- the *careful* one, which reads the parser's event stream and reports every problem with its
  line. It is the reference; files that hold those characters in quoted text (a URL query,
  a pattern) simply take it.

Each document remembers the line of every value, so later validation can say where a problem is.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from yaml import events

from reconciler.core.errors import Diagnostic

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_PROBLEMS = 50

Loc = tuple[str | int, ...]

_PARSER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_SCALARS = yaml.constructor.SafeConstructor()
# Implicit scalar types turned into Python values; anything else (timestamps, '<<', '=') stays
# the text it was written as, so plain() only ever holds JSON-like data.
_TYPED = {
    "tag:yaml.org,2002:null": _SCALARS.construct_yaml_null,
    "tag:yaml.org,2002:bool": _SCALARS.construct_yaml_bool,
    "tag:yaml.org,2002:int": _SCALARS.construct_yaml_int,
    "tag:yaml.org,2002:float": _SCALARS.construct_yaml_float,
}


class YamlError(Exception):
    """The file is refused; ``diagnostics`` says where and why, one plain sentence each."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(str(d) for d in diagnostics))


@dataclass(frozen=True)
class YamlDocument:
    """One document of a file: plain data plus the line of every value in it.

    ``lines`` maps a path (mapping keys and list indexes) to the 1-based line where that entry
    starts: the key's line for a mapping entry, the item's line for a list item. ``line`` is
    where the document's content starts (after any ``---``).
    """

    value: Any
    lines: Mapping[Loc, int]
    line: int

    def plain(self) -> Any:
        """A private copy of the data: dicts, lists, str, int, float, bool and None only."""
        return copy.deepcopy(self.value)

    def line_of(self, loc: Iterable[Any]) -> int | None:
        """Line of the value at ``loc``, or of its nearest existing parent.

        Parts of ``loc`` that are not in the document (a missing key, or the extra parts pydantic
        puts in its error locations) are skipped, so the answer is always a real line.
        """
        exact = self.lines.get(loc if isinstance(loc, tuple) else tuple(loc))
        if exact is not None:
            return exact  # the usual case: the value is there
        path: Loc = ()
        best = self.lines.get(path, self.line)
        for part in loc:
            candidate = (*path, part)
            if candidate in self.lines:
                path = candidate
                best = self.lines[path]
        return best


def load_yaml_documents(raw: bytes | str, filename: str) -> list[YamlDocument]:
    """Parse every document of ``raw``; raise ``YamlError`` naming each problem found."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if len(data) > MAX_BYTES:
        problem = Diagnostic(
            filename,
            None,
            f"the file is {len(data)} bytes, over the {MAX_BYTES}-byte limit for "
            "YAML input; split it into several files",
        )
        raise YamlError([problem])
    if not any(indicator in data for indicator in _INDICATORS):
        quick = _quick_documents(data)
        if quick is not None:
            return quick
    return _careful_documents(data, filename)


# -- the quick reader: libyaml composes, one walk builds plain data and lines ---------------

_INDICATORS = (b"&", b"*", b"!")  # anchor, alias, tag: absent, none of them can be in the file
_STR = _RESOLVER.DEFAULT_SCALAR_TAG
_SEQ = _RESOLVER.DEFAULT_SEQUENCE_TAG
_MAP = _RESOLVER.DEFAULT_MAPPING_TAG
_ScalarNode = yaml.ScalarNode
_SequenceNode = yaml.SequenceNode
_CACHED_LENGTH = 64  # plain scalars this short have their tag cached


class _GiveUp(Exception):
    """The quick reader met something only the careful one may judge (and word)."""


class _QuickComposer(_PARSER):  # type: ignore[misc]  # libyaml's class, or PyYAML's
    """The safe loader's composer (libyaml's, in C, when present), with the resolver hooks it
    calls for every node replaced.

    ``descend_resolver``/``ascend_resolver`` count the nesting, so a deep file is left after
    ``MAX_DEPTH`` levels instead of being composed (libyaml's composer recurses on the C stack).
    ``resolve`` types plain scalars exactly as the careful reader does. Being given no ``!``,
    the composer never sees an explicit tag, so every node's tag is what ``resolve`` said.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.depth = 0

    def descend_resolver(self, current_node: Any, current_index: Any) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _GiveUp

    def ascend_resolver(self) -> None:
        self.depth -= 1

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        if kind is _ScalarNode:
            if not implicit[0]:
                return _STR  # quoted: always text
            if len(value) > _CACHED_LENGTH:
                return _RESOLVER.resolve(kind, value, implicit)  # type: ignore[no-any-return,no-untyped-call]
            return _plain_tag(value)
        return _SEQ if kind is _SequenceNode else _MAP


@functools.lru_cache(maxsize=4096)
def _plain_tag(value: str) -> str:
    """The tag YAML 1.1 gives an untagged plain scalar (what ``Resolver.resolve`` answers).

    Cached: the same keys and small values recur in every manifest, and the resolver tries
    a regular expression or two for each.
    """
    return _RESOLVER.resolve(_ScalarNode, value, (True, False))  # type: ignore[no-any-return,no-untyped-call]


def _quick_documents(data: bytes) -> list[YamlDocument] | None:
    """Every document, or None when the careful reader must look (it will find a problem,
    or a file the quick reader does not handle)."""
    documents: list[YamlDocument] = []
    try:
        composer = _QuickComposer(data)  # the pure-Python reader decodes here already
        try:
            while composer.check_node():
                root = composer.get_node()
                line = root.start_mark.line + 1
                lines: dict[Loc, int] = {(): line}
                documents.append(YamlDocument(_plain(root, (), lines), lines, line))
        finally:
            composer.dispose()
    except (yaml.YAMLError, _GiveUp, ValueError):
        return None  # ValueError: a decoding surprise; the careful reader words it
    return documents


def _plain(node: Any, path: Loc, lines: dict[Loc, int]) -> Any:
    """Plain data of a composed node, recording the line of every entry under ``path``.

    Scalars are handled in the loops (most nodes are scalars: one call fewer each).
    """
    if node.__class__ is _ScalarNode:
        return _scalar_value(node)
    if node.__class__ is _SequenceNode:
        items: list[Any] = []
        for index, item in enumerate(node.value):
            where = (*path, index)
            lines[where] = item.start_mark.line + 1
            items.append(
                _scalar_value(item) if item.__class__ is _ScalarNode else _plain(item, where, lines)
            )
        return items
    mapping: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.__class__ is not _ScalarNode or key_node.tag in _TYPED:
            raise _GiveUp  # not text: the careful reader names it
        key = key_node.value
        if key in mapping:
            raise _GiveUp  # duplicate: the careful reader gives both lines
        where = (*path, key)
        lines[where] = key_node.start_mark.line + 1
        mapping[key] = (
            _scalar_value(value_node)
            if value_node.__class__ is _ScalarNode
            else _plain(value_node, where, lines)
        )
    return mapping


def _scalar_value(node: Any) -> Any:
    tag = node.tag
    if tag == _STR:
        return node.value
    construct = _TYPED.get(tag)
    return node.value if construct is None else construct(node)


# -- the careful reader: events, every problem reported ----------------------------------


def _careful_documents(data: bytes, filename: str) -> list[YamlDocument]:
    from reconciler.core.yaml_events import Builder  # the careful reader (see the docstring)

    builder = Builder(filename)
    try:
        for event in _events(data):
            builder.feed(event)
            if builder.stopped:
                break  # the parser's cost grows with nesting: stop reading a hostile file
    except yaml.YAMLError as e:
        builder.problems.append(_syntax_problem(filename, e))
    problems = builder.finish()
    if problems:
        raise YamlError(problems)
    return builder.documents


def _events(data: bytes) -> Iterator[events.Event]:
    """The safe loader's parser events; a parser builds no objects, whatever the input says."""
    parser = _PARSER(data)
    try:
        while parser.check_event():
            yield parser.get_event()
    finally:
        parser.dispose()


def _syntax_problem(filename: str, e: yaml.YAMLError) -> Diagnostic:
    """Describe a parse error without quoting the file (its snippet could hold a secret)."""
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        line = e.problem_mark.line + 1
        if e.problem == _LIBYAML_TOO_DEEP:  # its own limit (1,000), met while scanning ahead
            return Diagnostic(filename, line, _too_deep())
        what = e.problem or "invalid syntax"
        if e.context:
            what = f"{what} ({e.context})"
        return Diagnostic(filename, line, f"this is not valid YAML: {what}; fix the syntax")
    if isinstance(e, yaml.reader.ReaderError):
        return Diagnostic(filename, None, "the file is not UTF-8 text; save it as UTF-8")
    return Diagnostic(filename, None, "this is not valid YAML; fix the syntax")


_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"  # libyaml >= 0.2.6 (PyYAML 6.0.4 wheels)


def _too_deep() -> str:
    return f"the data is nested deeper than {MAX_DEPTH} levels; flatten it"
