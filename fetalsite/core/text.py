"""Text folding for search: one rule, used where text is saved and where it is searched."""

from __future__ import annotations

import re
import unicodedata

# Letters that carry no combining mark to strip but that people type without the stroke or ligature.
_PLAIN = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def fold_for_search(text: str) -> str:
    """``text`` without accents, in lower case, with runs of spaces as one: "Zoë  NÚÑEZ" -> "zoe nunez"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).translate(_PLAIN)
    return " ".join(plain.split())


def search_words(query: str) -> list[str]:
    """The folded words of a search query, punctuation dropped: "Nunez, Zoë" -> ["nunez", "zoe"]. A query of
    punctuation only ("-") is kept whole, so it still narrows the search."""
    folded = fold_for_search(query)
    return re.findall(r"\w+", folded) or ([folded] if folded else [])
