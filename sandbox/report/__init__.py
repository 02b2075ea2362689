"""Migration reports: the run's report dict rendered as a self-contained HTML page or as JSON."""

from .html_page import render_html
from .json_document import render_json

__all__ = ["render_html", "render_json"]
