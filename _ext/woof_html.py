"""A local Sphinx extension for the Woof book (loaded through ``_config.yml``).

It works around one upstream bug that the browser test (``tests/test_browser.py``)
catches as a JavaScript error on every page:

Sphinx 7.4 lists an inline ``<script>`` twice when an extension adds it after the
builder has started (``app.add_js_file(None, body=...)``): once as added, once again
when the HTML builder copies the registry with the filename ``''`` instead of ``None``.
sphinx-thebe adds ``const THEBE_JS_URL = ...`` that way, so every page declared that
constant twice and the browser reported ``SyntaxError: Identifier 'THEBE_JS_URL' has
already been declared``. We drop the second copy of any inline script whose body
is identical to an earlier one.
"""

from __future__ import annotations


def _drop_duplicate_inline_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen_bodies = set()
    kept = []
    for script in scripts:
        filename = getattr(script, "filename", script)
        body = getattr(script, "attributes", {}).get("body") if not filename else None
        if body is not None:
            if body in seen_bodies:
                continue
            seen_bodies.add(body)
        kept.append(script)
    scripts[:] = kept


def setup(app):
    app.connect("html-page-context", _drop_duplicate_inline_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
