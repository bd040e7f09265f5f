"""``Headers``: the ordered multidict of a message's header fields (RFC 3261 section 7.3)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.sip.headers import LIST_HEADERS, TOKEN_RE, canonical_name, split_header_list

__all__ = ["Headers"]


class Headers:
    """An ordered multidict of header fields; names canonicalised, compact forms expanded.

    Each item is one header line as received or added. ``get_all`` splits the comma-separated
    values of list headers (Via, Contact, Route, Allow ...) into separate items, never those of
    WWW-Authenticate, Authorization, Date and the like, whose commas are part of one value.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = []
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str]]) -> Headers:
        headers = cls.__new__(cls)
        headers._items = items
        return headers

    def get(self, name: str, default: str | None = None) -> str | None:
        """The value of the first line named ``name`` (unsplit), or ``default``."""
        key = canonical_name(name)
        for item_name, value in self._items:
            if item_name == key:
                return value
        return default

    def get_lines(self, name: str) -> list[str]:
        """The value of every line named ``name``, unsplit."""
        key = canonical_name(name)
        return [value for item_name, value in self._items if item_name == key]

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; list headers split on their commas (section 7.3.1).

        Raises ``ParseError`` on an unbalanced quote or ``<`` in a list header.
        """
        key = canonical_name(name)
        values = [value for item_name, value in self._items if item_name == key]
        if key not in LIST_HEADERS:
            return values
        out: list[str] = []
        for value in values:
            out += split_header_list(value)
        return out

    def add(self, name: str, value: str) -> None:
        """Append a header line. Raises ``ValueError`` for a non-token name or a CR/LF value."""
        self._items.append(_checked(name, value))

    def insert(self, index: int, name: str, value: str) -> None:
        """Insert a header line at ``index`` (0: above all others, as a new top Via or Route)."""
        self._items.insert(index, _checked(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line named ``name`` by one, where the first one was (else at the end)."""
        item = _checked(name, value)
        for i, (item_name, _) in enumerate(self._items):
            if item_name == item[0]:
                self._items[i] = item
                self._items[i + 1 :] = [it for it in self._items[i + 1 :] if it[0] != item[0]]
                return
        self._items.append(item)

    def remove(self, name: str) -> None:
        """Remove every line named ``name`` (no error when there is none)."""
        key = canonical_name(name)
        self._items = [item for item in self._items if item[0] != key]

    def copy(self) -> Headers:
        """A shallow copy that can be changed independently."""
        return Headers._trusted(list(self._items))

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = canonical_name(name)
        return any(item_name == key for item_name, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._items == other._items

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


def _checked(name: str, value: str) -> tuple[str, str]:
    if TOKEN_RE.fullmatch(name) is None:
        raise ValueError(f"Header name is not a token: {name!r}")
    if "\r" in value or "\n" in value:
        # A CR or LF would end the line: header injection.
        raise ValueError(f"Header value contains CR or LF: {value!r}")
    return canonical_name(name), value.strip(" \t")
