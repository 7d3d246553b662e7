"""The static HTML report (``reconciler report --out DIR``).

A self-contained site, no server and nothing fetched from the network: ``index.html`` links a
provider catalog with each organization's connection states, one "Connected Apps" page per
organization with response-time charts, the audit log, and (with ``--plan FILE``) a saved
plan a reviewer can read change by change.

Modules: ``entries`` reads health history and audit entries; ``chart`` is the SVG chart's
geometry; ``pages`` decides what each page shows; ``planfile`` reads a saved plan's public
parts; ``site`` renders the Jinja2 templates and writes the files.
"""

from reconciler.report.site import render_site, write_report

__all__ = ["render_site", "write_report"]
