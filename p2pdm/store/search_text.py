"""What the full-text index holds of a message: the one function the SQLite
triggers call, and the phrase query a person's search text becomes.

How this works: the SQLite store registers :func:`search_text` on its
connection as ``p2pdm_search_text(kind, body)``; the triggers on ``messages``
(``store/schema.py``) call it whenever a message is stored, its body or kind
changes (an edit, an erased body) or it is deleted, so every code path that
writes a message keeps the index in step within its own transaction, with no
call of its own. :func:`phrase_query` turns what a person typed into an FTS5
query that cannot be a syntax error: each word a quoted phrase (quotes
doubled), all of them required, the last one also matching as a prefix.
The memory store uses :func:`words` for the same matching.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from p2pdm.core.kinds import TextBody, decode_stored
from p2pdm.errors import SchemaError
from p2pdm.limits import MAX_SEARCH_QUERY_CHARS

__all__ = [
    "QUERY_PATTERN",
    "SEARCH_TEXT_FUNCTION",
    "mark_matches",
    "phrase_query",
    "search_terms",
    "search_text",
    "words",
]

#: The SQL name of :func:`search_text` on the store's connection.
SEARCH_TEXT_FUNCTION: Final = "p2pdm_search_text"

#: What a search must hold somewhere: a letter or a digit.
QUERY_PATTERN: Final = r"[^\W_]"
#: A word, as FTS5's unicode61 tokenizer sees one (letters and digits).
_WORD: Final = re.compile(QUERY_PATTERN + "+")


#: The last call's arguments and answer: SQLite flattens the triggers'
#: ``SELECT … FROM (SELECT p2pdm_search_text(…) AS t) WHERE t IS NOT NULL``
#: into two calls with the same arguments, one after the other.
_last: tuple[object, object, str | None] = (None, None, None)


def search_text(kind: object, body: object) -> str | None:
    """The searchable text of a stored message: a text's text; None for other
    kinds, an erased body or one that does not decode (never raises)."""
    global _last
    last_kind, last_body, last_text = _last  # one tuple: safe across threads
    if kind == last_kind and body == last_body and kind is not None:
        return last_text
    if not isinstance(kind, str) or not isinstance(body, bytes) or not body:
        return None
    decoded = decode_stored(kind, body)
    text = decoded.text if isinstance(decoded, TextBody) else None
    _last = (kind, body, text)
    return text


def search_terms(query: str) -> list[str]:
    """The words of a search; raises SchemaError for a query too long or with
    no word at all (no letter or digit: QUERY_PATTERN, as the API documents)."""
    if len(query) > MAX_SEARCH_QUERY_CHARS:
        raise SchemaError(f"a search is at most {MAX_SEARCH_QUERY_CHARS} characters")
    if not _WORD.search(query):
        raise SchemaError("a search needs at least one word (letters or digits)")
    # Folding can leave nothing of an odd word (a lone combining letter): then
    # the words as typed, case-folded.
    return words(query) or _WORD.findall(query.casefold())


def phrase_query(terms: list[str]) -> str:
    """An FTS5 query requiring every term, the last also as a prefix."""
    quoted = ['"' + term.replace('"', '""') + '"' for term in terms]
    quoted[-1] += "*"
    return " ".join(quoted)


def mark_matches(text: str, terms: list[str], open_: str = "[", close: str = "]") -> str:
    """``text`` with each word a search matched wrapped in ``open_``…``close``."""
    *whole, prefix = terms

    def mark(match: re.Match[str]) -> str:
        folded = words(match.group())
        hit = bool(folded) and (folded[0] in whole or folded[0].startswith(prefix))
        return f"{open_}{match.group()}{close}" if hit else match.group()

    return re.sub(r"\w+", mark, text)


def words(text: str) -> list[str]:
    """The words of ``text``, case and diacritics folded (as FTS5's
    ``unicode61 remove_diacritics 2`` does)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _WORD.findall(bare)
