"""The report's overview lists open incidents first, with how long each has been open."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import Env


def test_overview_lists_open_incidents_first(env: Env, sim, tmp_path: Path) -> None:
    assert env.run("apply").exit_code == 0
    out = tmp_path / "site"
    assert env.run("report", "--out", str(out)).exit_code == 0
    assert "Open incidents" not in (out / "index.html").read_text()
    sim.revoke(env.vars["GLOBEX_STRIPE_SECRET_KEY"])
    assert env.run("health").exit_code == 1
    assert env.run("report", "--out", str(out)).exit_code == 0
    html = (out / "index.html").read_text()
    assert "Open incidents (1)" in html
    assert html.index("Open incidents") < html.index("pages-heading")
    section = html[html.index("incidents-heading") : html.index("pages-heading")]
    assert 'href="org-globex.html">globex/stripe</a>' in section
    assert "invalid_credentials" in section
    assert re.search(r"<td>\d+s</td>", section), "how long it has been open"
    assert "The API key you entered is invalid." in section
    page = (out / "org-globex.html").read_text()
    assert "Open incidents (1)" in page and "<strong>stripe</strong> invalid_credentials" in page
    assert "Open incidents" not in (out / "org-acme.html").read_text()
