"""Maintainer tools, run from a checkout (``python tools/<name>.py``); not part of the installed package."""
