"""The local web app (`ironspire serve`): pages rendered on the server, a small script for live
updates, a JSON twin of every page under /api/. ``create_app(ws)`` builds it around an open
workspace, for embedding and for tests."""

from ironspire.web.app import create_app
from ironspire.web.state import TABS, Tab

__all__ = ["TABS", "Tab", "create_app"]
