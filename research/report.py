"""HTML reports: papermill executes a template from `notebooks/`, nbconvert turns it into one offline page.

Two halves. `execute_report` (used by `python -m research report`) checks the template's `parameters`
cell, runs it with papermill into `report.ipynb` and writes `report.html` (code hidden unless asked,
no CDN scripts, so the page opens offline). The `show_*` helpers are called from inside the templates:
the run manifest first, plotly figures (plotly.js inlined once per page), tables.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cryptobot import atomic
from cryptobot.cli_errors import UserError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TEMPLATES = {
    "backtest": "backtest_report.ipynb",
    "sweep": "sweep_report.ipynb",
    "tuning": "tuning_report.ipynb",
    "walkforward": "walkforward_report.ipynb",
    "live": "live_vs_backtest.ipynb",
    "tour": "tour.ipynb",
}
# nbconvert's lab page without the require.js and MathJax <script> tags it loads from a CDN: a report
# must open offline, and a failed script load is a console error.
OFFLINE_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
"""


class ReportError(UserError, RuntimeError):
    """A template that cannot be used or whose execution failed; the message says which and why."""


# --------------------------------------------------------------------------------------- executing
def template_parameters(template: Path) -> dict[str, Any]:
    """Names and defaults of the template's `parameters` cell; a template without one is refused."""
    import nbformat

    if not template.is_file():
        raise ReportError(f"{template}: template not found")
    nb = nbformat.read(template, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ReportError(f"{template}: no cell is tagged 'parameters'; papermill needs one to inject the "
                          "report's inputs (add the tag to the cell that assigns the defaults)")
    import papermill

    try:
        found = papermill.inspect_notebook(str(template))
    except ValueError as exc:  # e.g. no kernelspec in the notebook's metadata
        raise ReportError(f"{template}: papermill cannot read its parameters: {exc}") from exc
    return {name: _literal(p["default"]) for name, p in found.items()}


def _literal(source: str) -> Any:
    """A parameter default as a value (papermill reports its source text); non-literals stay text."""
    import ast

    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return source


def parse_param(text: str) -> tuple[str, Any]:
    """`NAME=VALUE` with VALUE read as YAML (numbers, booleans, lists); a bare string stays a string, and so
    does anything YAML would turn into a non-JSON value (a date such as 2018-04-01: papermill writes JSON)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ReportError(f"--param {text!r}: expected NAME=VALUE, e.g. --param top=10")
    if not value.strip():
        return name.strip(), ""
    parsed = yaml.safe_load(value)
    try:
        json.dumps(parsed)
    except TypeError:
        return name.strip(), value.strip()
    return name.strip(), parsed


def execute_report(template: Path, out: Path, parameters: dict[str, Any], show_code: bool = False,
                   progress: bool = True) -> Path:
    """Execute `template` with `parameters` into `out/report.ipynb`, then write `out/report.html`.

    Unknown parameter names are refused (papermill would only warn). A cell that raises stops the
    report: the executed notebook is kept for debugging and a ReportError names the error.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    known = template_parameters(template)
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise ReportError(f"{template.name}: unknown parameter(s) {unknown}; this template takes {sorted(known)}")
    out.mkdir(parents=True, exist_ok=True)
    notebook = out / "report.ipynb"
    tmp = out / f".report.{os.getpid()}.ipynb"
    try:
        papermill.execute_notebook(str(template), str(tmp), parameters=parameters, kernel_name="python3",
                                   progress_bar=progress, cwd=str(Path.cwd()))
    except PapermillExecutionError as exc:
        os.replace(tmp, notebook)
        raise ReportError(f"{template.name}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue} "
                          f"(executed notebook with the traceback: {notebook})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, notebook)
    return write_html(notebook, out / "report.html", show_code)


def write_html(notebook: Path, path: Path, show_code: bool = False) -> Path:
    """nbconvert HTML of an executed notebook, code cells hidden unless `show_code`, written atomically."""
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"offline.html.j2": OFFLINE_TEMPLATE})],
                            template_file="offline.html.j2", exclude_input=not show_code,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4))
    return atomic.write_text(path, body)


# ------------------------------------------------------------------------------- inside templates
def load_manifest(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; --run takes the output directory of a previous "
                                "backtest/sweep/walkforward (or report) run")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def non_default_keys(config: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Config keys whose value differs from the shipped defaults: key → (value, default)."""
    from cryptobot.config import SECRET_KEYS, Config

    default = _flatten(Config().public_dict())
    return {k: (v, default.get(k, "(not a default key)")) for k, v in _flatten(config).items()
            if default.get(k, object()) != v and k not in SECRET_KEYS}


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in pairs)


def manifest_html(manifest: dict[str, Any]) -> str:
    """The manifest as the report's first section (`<section id="run-manifest">`)."""
    code = manifest.get("code", {})
    commit = f"{code.get('commit', 'unknown')}" + (" (uncommitted changes)" if code.get("dirty") else "")
    general = [("kind", manifest.get("kind")), ("created", manifest.get("created_at")), ("code commit", commit),
               ("command", " ".join(manifest.get("command", []))), ("config hash", manifest.get("config_hash"))]
    config = manifest.get("config", {})
    seeds = dict(manifest.get("seeds") or {})
    if "ml" in config and "seed" in config["ml"]:
        seeds.setdefault("ml.seed", config["ml"]["seed"])
    data_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(d.get(k, '')))}</td>"
                         for k in ("source", "rows", "first", "last", "file_sha256", "frame_sha256")) + "</tr>"
        for d in manifest.get("data", []))
    changed = non_default_keys(config) if config else {}
    changed_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td>"
                           f"<td>{html.escape(str(d))}</td></tr>" for k, (v, d) in sorted(changed.items()))
    params = manifest.get("parameters", {})
    return (
        '<section id="run-manifest"><h2>Run manifest</h2>'
        f'<table class="manifest">{_rows(general)}</table>'
        "<h3>Data</h3><table><tr><th>source</th><th>rows</th><th>first bar</th><th>last bar</th><th>file sha256</th>"
        f"<th>frame sha256</th></tr>{data_rows}</table>"
        "<h3>Config keys that differ from the defaults</h3>"
        + (f"<table><tr><th>key</th><th>value</th><th>default</th></tr>{changed_rows}</table>" if changed_rows
           else "<p>none: the shipped defaults</p>")
        + f"<h3>Parameters</h3><table>{_rows(sorted((k, v) for k, v in params.items()))}</table>"
        + "<h3>Seeds</h3>" + (f"<table>{_rows(sorted(seeds.items()))}</table>" if seeds else "<p>none used</p>")
        + f"<h3>Library versions</h3><table>{_rows(sorted(manifest.get('libraries', {}).items()))}</table></section>"
    )


def show_manifest(manifest: dict[str, Any]) -> None:
    from IPython.display import HTML, display

    display(HTML(manifest_html(manifest)))


_PLOTLY_INCLUDED = False


def show_figure(fig: Any) -> None:
    """Display a plotly figure as HTML; plotly.js is inlined with the first figure of the page only."""
    global _PLOTLY_INCLUDED
    from IPython.display import HTML, display

    display(HTML(fig.to_html(include_plotlyjs=not _PLOTLY_INCLUDED, full_html=False,
                             config={"displaylogo": False, "responsive": True})))
    _PLOTLY_INCLUDED = True


def show_table(frame: pd.DataFrame, caption: str = "", float_format: str = "{:,.4g}", index: bool = False) -> None:
    from IPython.display import HTML, display

    styled = frame.to_html(index=index, float_format=float_format.format, border=0, classes="report-table",
                           na_rep="")
    display(HTML((f"<p><b>{html.escape(caption)}</b></p>" if caption else "") + styled))


def show_text(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))
