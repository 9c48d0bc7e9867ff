"""The code docs/api.md shows, taken from its fenced blocks marked ``<!-- test: NAME -->``, so that tests run
what a reader copies (the webhook ``verify`` and receiver here)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

DOCS = Path(settings.BASE_DIR) / "docs" / "api.md"


def docs_block(name: str, *, language: str = "python") -> str:
    """The fenced block right after ``<!-- test: NAME -->`` in docs/api.md."""
    match = re.search(rf"<!-- test: {name} -->\n```{language}\n(.*?)\n```\n", DOCS.read_text(), re.DOTALL)
    assert match, f"docs/api.md has no ```{language} block marked <!-- test: {name} -->"
    return match.group(1)


def docs_namespace(*names: str) -> dict:
    """Run the named python blocks, in order, in one namespace (as one file a reader pasted them into), not as
    ``__main__``; return the namespace."""
    namespace: dict = {"__name__": "docs_api"}
    for name in names:
        exec(compile(docs_block(name), f"{DOCS}#{name}", "exec"), namespace)  # noqa: S102
    return namespace


def docs_verify():
    """docs/api.md's ``verify(secret, headers, body, tolerance_s=300) -> bool``."""
    return docs_namespace("webhook-verify")["verify"]
