"""The fruit-label vocabulary: a free-text label is kept only when it names a known fruit.

A label field is free text written on the phone: "Jane Doe 0612345678" fits as
well as "apple". Only a vocabulary match is stored (as its canonical slug);
anything else becomes null, counted by the caller, and the photo is kept. Matching
is on Unicode NFKC + casefold with spaces, hyphens and underscores folded, so
"Red_Apple", its fullwidth form and "red-apple" are one label, in any script.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_VOCABULARY_PATH = Path(__file__).with_name("label_vocabulary.json")
LABEL_MAX_CHARS = 64
CANONICAL_LABEL = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_SEPARATORS = re.compile(r"[\s_\-]+")
# Emoji presentation selectors: "🍎" and "🍎\ufe0f" are the same fruit.
_VARIATION_SELECTORS = dict.fromkeys((0xFE0E, 0xFE0F))


class VocabularyError(ValueError):
    """The vocabulary file is unreadable or malformed (the message says where)."""


def match_key(text: str) -> str:
    """The form labels are compared in: NFKC, casefold, separators folded to one space."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_VARIATION_SELECTORS)
    return _SEPARATORS.sub(" ", folded).strip()


@dataclass(frozen=True)
class LabelVocabulary:
    """Canonical labels (`[a-z0-9-]` slugs) and the spellings that map to each."""

    aliases: Mapping[str, str]

    @classmethod
    def from_mapping(cls, entries: Mapping[str, list[str]]) -> LabelVocabulary:
        """`{"apple": ["pomme", "яблоко", "🍎"], ...}`; the canonical label is an alias of itself."""
        aliases: dict[str, str] = {}
        for canonical, spellings in entries.items():
            if not isinstance(canonical, str) or not CANONICAL_LABEL.match(canonical):
                raise VocabularyError(f"canonical label {canonical!r} is not a [a-z0-9-] slug")
            if not isinstance(spellings, list) or not all(isinstance(s, str) for s in spellings):
                raise VocabularyError(f"aliases of {canonical!r} must be a list of strings")
            for spelling in (canonical, *spellings):
                key = match_key(spelling)
                if not key or aliases.get(key, canonical) != canonical:
                    raise VocabularyError(f"alias {spelling!r} is empty or names two labels")
                aliases[key] = canonical
        if not aliases:
            raise VocabularyError("the vocabulary is empty")
        return cls(aliases)

    @classmethod
    def from_file(cls, path: Path) -> LabelVocabulary:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise VocabularyError(f"{path} is unreadable or not JSON ({type(error).__name__})") from None
        if not isinstance(entries, dict):
            raise VocabularyError(f"{path} must hold a JSON object: canonical label -> list of aliases")
        return cls.from_mapping(entries)

    def match(self, raw: str) -> str | None:
        """The canonical label `raw` names, or None (never raises, never echoes `raw`)."""
        if len(raw) > LABEL_MAX_CHARS:
            return None
        return self.aliases.get(match_key(raw))

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(self.aliases.values())


def default_vocabulary() -> LabelVocabulary:
    return LabelVocabulary.from_file(DEFAULT_VOCABULARY_PATH)
