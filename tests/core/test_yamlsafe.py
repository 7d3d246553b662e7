"""The hostile-input YAML loader: plain data in, every dangerous construct refused."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reconciler.core.yamlsafe import MAX_BYTES, MAX_DEPTH, YamlError, load_yaml_documents


def refused(text: str | bytes) -> list[str]:
    """The problems (as 'file:line: message') for a document that must be refused."""
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(YamlError) as info:
        load_yaml_documents(raw, "m.yaml")
    return [str(d) for d in info.value.diagnostics]


def test_plain_data_with_yaml_types():
    (doc,) = load_yaml_documents(
        b"a: 1\nb: [x, 2.5, true, null]\nc: {d: '07'}\nwhen: 2024-01-01\nphone: +15555550100\n",
        "m.yaml",
    )
    assert doc.plain() == {
        "a": 1,
        "b": ["x", 2.5, True, None],
        "c": {"d": "07"},
        "when": "2024-01-01",
        "phone": 15555550100,
    }
    assert doc.value == doc.plain()
    doc.plain()["a"] = 2
    assert doc.value["a"] == 1  # plain() is a private copy


def test_multi_document_files_and_empty_documents():
    docs = load_yaml_documents(b"a: 1\n---\nb: 2\n---\n", "m.yaml")
    assert [d.value for d in docs] == [{"a": 1}, {"b": 2}, None]
    assert docs[1].line_of(("b",)) == 3
    assert load_yaml_documents(b"", "m.yaml") == []


def test_line_of_finds_values_and_nearest_parent():
    (doc,) = load_yaml_documents(
        b"top: 1\nspec:\n  items:\n    - name: a\n    - name: b\n      extra: c\n", "m.yaml"
    )
    assert doc.line_of(("top",)) == 1
    assert doc.line_of(("spec", "items")) == 3
    assert doc.line_of(("spec", "items", 1)) == 5
    assert doc.line_of(("spec", "items", 1, "extra")) == 6
    assert doc.line_of(("spec", "items", 1, "missing")) == 5
    assert doc.line_of(("spec", "items", 1, "function-after[x]", "extra")) == 6
    assert doc.line_of(()) == 1


def test_duplicate_keys_at_any_depth_name_the_key_and_both_lines():
    problems = refused("a: 1\nb:\n  c: 1\n  d:\n    - {x: 1, x: 2}\n  c: 3\n")
    assert problems == [
        "m.yaml:5: duplicate key 'x' (first at line 5, again at line 5); keep only one",
        "m.yaml:6: duplicate key 'c' (first at line 3, again at line 6); keep only one",
    ]


def test_python_tag_is_refused_and_never_runs(tmp_path: Path):
    target = tmp_path / "pwned"
    problems = refused(f'a: !!python/object/apply:os.system ["touch {target}"]\n')
    assert not target.exists()
    assert problems == [
        "m.yaml:1: the tag !!python/object/apply:os.system is not allowed; "
        "remove it and write a plain value (text, number, true/false, list or "
        "mapping)"
    ]


@pytest.mark.parametrize(
    "tagged",
    [
        "!!str 3",
        "!foo x",
        "! 3",
        "!!map {a: 1}",
        "!!python/name:os.system ''",
        "!<tag:x.org,1:y> z",
    ],
)
def test_every_explicit_tag_is_refused(tagged: str):
    (problem,) = refused(f"ok: 1\nvalue: {tagged}\n")
    assert problem.startswith("m.yaml:2: the tag ")
    assert "is not allowed" in problem


def test_anchors_and_aliases_are_refused():
    problems = refused("a: &x [1]\nb: *x\nc: *x\n")
    assert problems[0].startswith("m.yaml:1: an anchor (&name) is not allowed")
    assert problems[1].startswith("m.yaml:2: an alias (*name) is not allowed")
    assert "first of 2 in this file" in problems[1]


def test_billion_laughs_is_refused_fast():
    lol = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    lines = [f"a0: &a0 {lol}"]
    for i in range(1, 10):
        refs = ",".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    started = time.perf_counter()
    problems = refused("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0
    assert len(problems) == 2  # one per kind of problem, with counts, not 90 lines


def test_nesting_limit():
    assert load_yaml_documents(
        ("a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)).encode(), "m.yaml"
    )
    deep = "a: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert refused(deep) == [
        f"m.yaml:1: the data is nested deeper than {MAX_DEPTH} levels; flatten it"
    ]
    block = "".join("  " * i + f"k{i}:\n" for i in range(40)) + "  " * 40 + "leaf\n"
    assert refused(block)[0].startswith(f"m.yaml:{MAX_DEPTH + 1}: the data is nested deeper")


def test_very_deep_nesting_is_cheap():
    started = time.perf_counter()
    refused("[" * 200_000 + "]" * 200_000)
    assert time.perf_counter() - started < 5.0


def test_oversized_file_is_refused_before_parsing():
    raw = b"a: [" + b"x" * MAX_BYTES  # also invalid YAML: only the size is reported
    assert refused(raw) == [
        f"m.yaml: the file is {len(raw)} bytes, over the {MAX_BYTES}-byte "
        "limit for YAML input; split it into several files"
    ]


def test_keys_must_be_text():
    problems = refused("1: a\ntrue: b\n~: c\n? [x]\n: d\n'2': ok\n")
    assert [p.split(":")[1] for p in problems] == ["1", "2", "3", "4"]
    assert "put it in quotes" in problems[0]


def test_syntax_errors_name_the_line_but_never_quote_the_file():
    canary = "sk_live_CANARY1234567890"
    problems = refused(f'a: 1\napi_key: "{canary}\n')
    assert problems[0].startswith("m.yaml:3: this is not valid YAML")
    assert all(canary not in p for p in problems)
    problems = refused(f"a: 1\nb: {canary}: x\n")
    assert problems[0].startswith("m.yaml:2: this is not valid YAML")
    assert all(canary not in p for p in problems)


def test_non_utf8_is_refused_plainly():
    assert refused(b"a: \xff\xfe\x00x\n")[0].startswith("m.yaml")


def test_merge_keys_are_not_merged():
    (doc,) = load_yaml_documents(b"<<: {a: 1}\nb: 2\n", "m.yaml")
    assert doc.value == {"<<": {"a": 1}, "b": 2}
