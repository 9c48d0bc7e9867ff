"""Text folding for search: one rule, used where text is saved and where it is searched."""

from __future__ import annotations

import unicodedata

# Letters that carry no combining mark to strip but that people type without the stroke or ligature.
_PLAIN = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def fold_for_search(text: str) -> str:
    """``text`` without accents, in lower case, with runs of spaces as one: "Zoë  NÚÑEZ" -> "zoe nunez"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_PLAIN)
    return " ".join(plain.split())
