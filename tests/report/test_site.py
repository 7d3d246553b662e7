"""The report written from a database seeded by the real tool: structure, empty states,
escaping, the plan page and the canary search over every file of the site."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reconciler.simulator import Simulator
from tests.conftest import CANARIES, CATALOG, Env, assert_no_canary

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
ACME_STATES = {
    "anthropic": "connected",
    "geoapify": "connected",
    "google_maps": "connected",
    "mapbox": "inactive",
    "postmark": "connected",
    "quo": "connected",
    "stripe": "connected",
}
GLOBEX_STATES = {"postmark": "error", "stripe": "connected"}


def seed(env: Env, sim: Simulator) -> None:
    """The README demo plus history: apply, two health rounds, then globex's Postmark token is
    revoked at the provider and a third round finds it failing."""
    for args in (("apply",), ("health",), ("health",)):
        result = env.run(*args)
        assert result.exit_code == 0, result.output
    sim.revoke(CANARIES["GLOBEX_POSTMARK_TOKEN"])
    assert env.run("health").exit_code == 1


def write_site(env: Env, out: Path, *extra: str) -> list[Path]:
    result = env.run("report", "--out", str(out), *extra)
    assert result.exit_code == 0, result.output
    assert f"to {out} (open {out / 'index.html'})" in result.output
    return sorted(p for p in out.rglob("*") if p.is_file())


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    content: list[Node | str] = field(default_factory=list)  # in document order

    @property
    def children(self) -> list[Node]:
        return [c for c in self.content if isinstance(c, Node)]

    def text(self) -> str:
        """The text as read, whitespace collapsed (style and script bodies left out)."""
        if self.tag in ("style", "script"):
            return ""
        parts = [c if isinstance(c, str) else c.text() for c in self.content]
        return " ".join("".join(parts).split())

    def iter(self) -> list[Node]:
        return [self, *(n for c in self.children for n in c.iter())]

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        return [
            n
            for n in self.iter()
            if n.tag == tag and all(n.attrs.get(k) == v for k, v in want.items())
        ]

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class TreeBuilder(HTMLParser):
    """Enough of an HTML parser for structure checks; fails on a misnested or unclosed tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].content.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].content.append(data)


def parse(path: Path) -> Node:
    builder = TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    assert builder.stack == [builder.root], f"{path.name}: unclosed <{builder.stack[-1].tag}>"
    return builder.root


def check_page_basics(doc: Node, name: str) -> None:
    """What every page has: language, title, viewport, a CSP, landmarks, one h1, labelled
    controls, alt on images, nothing loaded from elsewhere."""
    assert doc.find_all("html")[0].attrs.get("lang") == "en", name
    assert doc.find_all("title")[0].text(), name
    assert doc.find_all("meta", name="viewport"), name
    csp = doc.find_all("meta", http_equiv="Content-Security-Policy")
    assert csp and "default-src 'none'" in csp[0].attrs["content"], name
    assert len(doc.find_all("main")) == 1 and doc.find_all("nav"), name
    assert len(doc.find_all("h1")) == 1, name
    ids = {n.attrs["for"] for n in doc.find_all("label") if "for" in n.attrs}
    for control in doc.find_all("input") + doc.find_all("select"):
        assert control.attrs.get("id") in ids, f"{name}: control without a label"
    for img in doc.find_all("img"):
        assert img.attrs.get("alt"), f"{name}: image without alt"
        assert img.attrs["src"].startswith("data:image/svg+xml;base64,"), name
    for n in doc.iter():
        for attr in ("src", "href"):
            value = n.attrs.get(attr, "")
            assert not value.startswith(("http:", "https:", "//")), f"{name}: external {value}"
    assert not doc.find_all("link", rel="stylesheet"), name


def test_site_of_a_seeded_database(env: Env, sim: Simulator, tmp_path: Path) -> None:
    seed(env, sim)
    out = tmp_path / "site"
    files = write_site(env, out)
    assert [p.name for p in files] == [
        "audit.html",
        "catalog.html",
        "index.html",
        "org-acme.html",
        "org-globex.html",
    ]
    for p in files:
        check_page_basics(parse(p), p.name)

    index = parse(out / "index.html")
    links = {a.attrs["href"] for a in index.find_all("a")}
    assert {"catalog.html", "audit.html", "org-acme.html", "org-globex.html"} <= links
    assert "plan.html" not in links

    catalog = parse(out / "catalog.html")
    cards = catalog.find_all("li", class_="card")
    assert len(cards) == 7
    by_name = {c.attrs["data-provider"]: c for c in cards}
    stripe = by_name["stripe"].text()
    assert "Stripe" in stripe and "payment" in stripe and "API key" in stripe
    assert by_name["stripe"].find_all("img", alt="Stripe logo")
    for provider, state in ACME_STATES.items():
        states = {
            s.find_all("a")[0].text(): s.find_all("span")[0].attrs["data-state"]
            for s in by_name[provider].find_all("ul", class_="org-states")[0].children
        }
        assert states["acme"] == state
        assert states["globex"] == GLOBEX_STATES.get(provider, "not_connected")
    error = by_name["postmark"].find_all("span", data_state="error")[0]
    assert error.text().endswith("Error")  # told in words, not by colour alone
    options = [o.attrs["value"] for o in catalog.find_all("option")]
    assert options == ["", "ai", "communication", "mapping", "payment"]


def test_organization_pages_show_connections_resources_and_charts(
    env: Env, sim: Simulator, tmp_path: Path
) -> None:
    seed(env, sim)
    out = tmp_path / "site"
    write_site(env, out)
    for page, expected in (("org-acme.html", ACME_STATES), ("org-globex.html", GLOBEX_STATES)):
        doc = parse(out / page)
        apps = {a.attrs["data-provider"]: a for a in doc.find_all("li", class_="app")}
        assert {k: a.attrs["data-state"] for k, a in apps.items()} == expected
        for provider, app in apps.items():
            assert (
                "Owner" in app.text()
                and "Last check" in app.text()
                and "Failing since" in app.text()
            )
            charts = app.find_all("svg", role="img")
            if expected[provider] == "inactive":  # mapbox is inactive: never checked
                assert not charts and "No health check recorded yet" in app.text()
                continue
            assert len(charts) == 1, provider
            circles = charts[0].find_all("circle") + charts[0].find_all("path")
            assert len(circles) == 4  # apply + three health rounds
            assert charts[0].find_all("title")[0].text().startswith("Response times")

    globex = parse(out / "org-globex.html")
    postmark = next(
        a for a in globex.find_all("li", class_="app") if a.attrs["data-provider"] == "postmark"
    )
    assert postmark.find_all("time", class_="failing"), "failing since is shown"
    assert "The API key you entered is invalid" in postmark.text()
    assert len(postmark.find_all("path", class_="point-failed")) == 1

    acme = parse(out / "org-acme.html").text()
    defaults = [
        li.text()
        for section in parse(out / "org-acme.html").find_all("section", class_="resources")
        for li in section.find_all("li")
        if li.find_all("span", class_="badge badge-default")
    ]
    assert sorted(defaults) == [
        "+15555550100 label: Support default",
        "billing@acme.example name: Acme Billing default",
    ]
    assert "claude-sonnet-4-5" in acme


def test_audit_page_lists_entries_with_filters(env: Env, sim: Simulator, tmp_path: Path) -> None:
    seed(env, sim)
    out = tmp_path / "site"
    write_site(env, out)
    doc = parse(out / "audit.html")
    rows = doc.find_all("tr", data_item="")
    assert len(rows) == 23  # 21 creates + 2 status changes found by health
    assert rows[0].attrs["data-action"] == "instance.status"  # newest first
    assert {r.attrs["data-organization"] for r in rows} == {"acme", "globex"}
    org_options = [
        o.attrs["value"] for o in doc.find_all("select", id="audit-org")[0].find_all("option")
    ]
    assert org_options == ["", "acme", "globex"]
    actions = [
        o.attrs["value"] for o in doc.find_all("select", id="audit-action")[0].find_all("option")
    ]
    assert actions == [
        "",
        "connection.create",
        "connection.status",
        "instance.status",
        "resource.create",
    ]
    assert "ci-bot via apply" in rows[-1].text()


def test_empty_states_when_the_database_does_not_exist(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "site"
    files = write_site(env, out)
    assert [p.name for p in files] == ["audit.html", "catalog.html", "index.html"]
    for p in files:
        check_page_basics(parse(p), p.name)
    assert "database does not exist yet" in parse(out / "index.html").text()
    assert "database does not exist yet" in parse(out / "audit.html").text()
    catalog = parse(out / "catalog.html")
    assert len(catalog.find_all("li", class_="card")) == 7
    assert catalog.text().count("No organization uses it yet") == 7
    url = env.vars["RECONCILER_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        assert not Path(url.removeprefix("sqlite:///")).exists(), "report must not create it"


def _edit_acme(env: Env) -> None:
    path = env.cwd / "manifests" / "acme.yaml"
    text = path.read_text()
    text = text.replace(
        "{email: support@acme.example, name: Acme Support}",
        "{email: sales@acme.example, name: Acme Sales}",
    )
    text = text.replace(
        "name: Acme Billing, default: true", "name: Acme Billing Dept, default: true"
    )
    path.write_text(text)


def test_plan_page_shows_changes_and_hides_secrets(
    env: Env, sim: Simulator, tmp_path: Path
) -> None:
    seed(env, sim)
    _edit_acme(env)
    plan_file = tmp_path / "plan.json"
    rotated = CANARIES["ACME_QUO_KEY"] + "-rotated"
    result = env.run("plan", "--out", str(plan_file), ACME_QUO_KEY=rotated)
    assert result.exit_code == 0, result.output
    out = tmp_path / "site"
    files = write_site(env, out, "--plan", str(plan_file))
    assert "plan.html" in [p.name for p in files]
    doc = parse(out / "plan.html")
    check_page_basics(doc, "plan.html")
    assert "Plan: 1 to create, 2 to update, 1 to delete." in doc.text()
    summary = {
        r.attrs["data-organization"]: [td.text() for td in r.find_all("td")]
        for r in doc.find_all("tr")
        if "data-organization" in r.attrs
    }
    assert summary == {"acme": ["1", "2", "1", "0", "0"], "globex": ["0", "0", "0", "0", "0"]}
    changes = {c.find_all("code", class_="address")[0].text(): c for c in doc.find_all("details")}
    quo = changes["acme/quo"]
    row = next(r for r in quo.find_all("tr", class_="changed"))
    assert [td.text() for td in row.find_all("td")] == ["(sensitive)", "(sensitive)"]
    assert "credentials.api_key" in row.text() and "changed" in row.text()
    billing = changes["acme/postmark/sender_emails/billing@acme.example"]
    changed = [r.text() for r in billing.find_all("tr", class_="changed")]
    assert changed == ['name changed "Acme Billing" "Acme Billing Dept"']
    assert "(none)" in changes["acme/postmark/sender_emails/sales@acme.example"].text()
    assert "globex/postmark is unhealthy" in doc.text()  # the plan's notes
    saved = json.loads(plan_file.read_text())["saved"]
    html = (out / "plan.html").read_text()
    for fingerprints in saved["fingerprints"].values():
        for value in fingerprints.values():
            assert str(value) not in html, "the saved section is never shown"
    assert 'href="plan.html"' in (out / "index.html").read_text()

    # a later report without --plan removes the stale plan page
    write_site(env, out)
    assert not (out / "plan.html").exists()
    assert 'href="plan.html"' not in (out / "index.html").read_text()


def test_no_secret_anywhere_in_the_site(env: Env, sim: Simulator, tmp_path: Path) -> None:
    seed(env, sim)
    _edit_acme(env)
    plan_file = tmp_path / "plan.json"
    env.run("plan", "--out", str(plan_file), ACME_QUO_KEY=CANARIES["ACME_QUO_KEY"] + "x")
    out = tmp_path / "site"
    files = write_site(env, out, "--plan", str(plan_file))
    assert len(files) == 6
    for path in files:
        assert_no_canary(path.read_bytes(), str(path))


def test_a_hand_edited_plan_cannot_show_a_credential(env: Env, tmp_path: Path) -> None:
    secret = CANARIES["ACME_STRIPE_SECRET_KEY"]
    plan_file = tmp_path / "plan.json"
    change = {
        "address": "acme/stripe",
        "action": "update",
        "before": {"credentials": {"api_key": secret}},
        "after": {"credentials": {"api_key": secret}},
        "changed": ["credentials.api_key"],
    }
    plan_file.write_text(
        json.dumps({"format_version": "1.0", "changes": [change], "saved": {"x": secret}})
    )
    out = tmp_path / "site"
    write_site(env, out, "--plan", str(plan_file))
    assert "(sensitive)" in (out / "plan.html").read_text()
    for path in out.iterdir():
        assert_no_canary(path.read_bytes(), str(path))


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"format_version": "1.0"}',
        '{"format_version": "9.0", "changes": []}',
        '{"format_version": "1.0", "changes": [{"address": "a/b", "action": "explode"}]}',
    ],
)
def test_a_bad_plan_file_writes_nothing(env: Env, tmp_path: Path, content: str) -> None:
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(content)
    out = tmp_path / "site"
    result = env.run("report", "--out", str(out), "--plan", str(plan_file))
    assert result.exit_code == 1
    assert "plan" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_catalog_text_is_escaped_and_logos_cannot_run_script(env: Env, tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    shutil.copytree(CATALOG, catalog)
    stripe = catalog / "stripe.yaml"
    stripe.write_text(
        stripe.read_text().replace(
            "description: Online payments;",
            "description: <script>alert(1)</script> & <b>bold</b> Online payments;",
        )
    )
    (catalog / "logos" / "stripe.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(2)</script></svg>'
    )
    out = tmp_path / "site"
    write_site(env, out, "--catalog", str(catalog))
    html = (out / "catalog.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert" not in html and "<b>bold" not in html
    doc = parse(out / "catalog.html")
    assert len(doc.find_all("svg")) == 0  # logos are images (data: URIs), never inline SVG
    assert len(doc.find_all("script")) == 1  # only the filter script
