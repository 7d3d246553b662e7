"""The quick YAML reader (libyaml's composer, for files without anchors, aliases or tags) and
the careful one (events, the reference) agree: whenever the quick one answers, it gives the
same data, types and line numbers. A seeded differential run over mutated manifests."""

from __future__ import annotations

import random

from reconciler.core import yamlsafe as y
from tests.conftest import CATALOG, MANIFESTS

SEEDS = [
    b"a: 1\n---\nb: 2\n---\n",
    b"",
    b"---\n",
    b"--- # c\na: 1\n",
    b"# c\n\na: [1, {b: c}]\n",
    b"a: 1\nb: [x, 2.5, true, null]\nc: {d: '07'}\nwhen: 2024-01-01\nphone: +15555550100\n",
    b"1: a\ntrue: b\n~: c\n? [x]\n: d\n'2': ok\n",
    b"<<: {a: 1}\nb: 2\n",
    b"a: " + b"[" * 31 + b"]" * 31,
    b"a: " + b"[" * 32 + b"]" * 32,
    b"- - - a\n- b\n",
    b"? a\n: b\n",
    b"a: |\n  x\n  y\nb: >\n  z\n",
    b"\xef\xbb\xbfa: 1\n",
    b"a: 1\r\nb: 2\r\n",
    b"x\n",
    b"'a': 1\n\"a\": 2\n",
    b"a:\n  b:\n    c: 1\n  b: 2\n",
    b"=: 1\n2001-01-01: x\n",
    b"a: 0o7\nb: 0x1F\nc: 1_000\nd: .inf\ne: 1e3\nf: ON\n",
]
ALPHABET = b" \n\t:-[]{},'\"#?|>%@`0123456789abcxyz~.+=<\\"


def careful(data: bytes) -> list[y.YamlDocument] | y.YamlError:
    try:
        return y._careful_documents(data, "m.yaml")
    except y.YamlError as e:
        return e


def agree(data: bytes) -> bool:
    """True when the quick reader answered (and agreed); False when it handed over."""
    quick = y._quick_documents(data)
    if quick is None:
        return False
    ref = careful(data)
    assert not isinstance(ref, y.YamlError), data
    assert len(quick) == len(ref), data
    for a, b in zip(quick, ref, strict=True):
        assert repr(a.value) == repr(b.value), data
        assert dict(a.lines) == dict(b.lines), data
        assert a.line == b.line, data
    return True


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        pos = rng.randint(0, len(buf))
        op = rng.random()
        if op < 0.4:
            buf[pos:pos] = bytes([rng.choice(ALPHABET)]) * rng.randint(1, 3)
        elif op < 0.8:
            del buf[pos : pos + rng.randint(1, 5)]
        else:
            lines = bytes(buf).split(b"\n")
            lines.insert(rng.randrange(len(lines)), lines[rng.randrange(len(lines))])
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)


def test_quick_and_careful_readers_agree() -> None:
    seeds = SEEDS + [p.read_bytes() for p in sorted(MANIFESTS.glob("*.yaml"))]
    seeds += [p.read_bytes() for p in sorted(CATALOG.glob("*.yaml"))]
    answered = sum(agree(s) for s in seeds)
    rng = random.Random(20261127)
    for _ in range(3000):
        answered += agree(mutate(rng, rng.choice(seeds)))
    assert answered > 1000  # the quick reader does most of the work, not none of it
