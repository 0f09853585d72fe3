"""WordNet 3.0 from Debian's ``wordnet-base`` (``/usr/share/wordnet``), read without nltk.

``read_synsets`` parses one ``data.<pos>`` file; a synset line is
``offset lexfile pos n_words (lemma lex_id)* n_ptrs (symbol offset pos source_target)* ... | gloss``
with the lemma count in hex. The lexicographer file number (second field) says what kind of thing
a noun names: ``LEXFILES`` lists the ones callers test. ``Lexicon`` maps casefolded words and
phrases (``north america``) to their senses, finding inflected forms the way WordNet's ``morphy``
does (exception lists, then suffix rules), and counts how often each word was sense-tagged in the
SemCor corpus (``index.<pos>``'s ``tagsense_cnt``: 0 for rare words such as ``plash``).
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
# Noun lexicographer files, lexnames(5WN): the second field of a data.noun line.
LEXFILES = {name: number for number, name in enumerate((
    "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive",
    "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time"), start=3)}
# morphy's detachment rules: suffix -> replacement, per part of speech.
_SUFFIXES = {
    "n": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
          ("ies", "y")),
    "v": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")),
    "a": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "r": (),
}


@dataclass(frozen=True)
class Synset:
    """One synset line: ``pointers`` are ``(symbol, offset, pos)``."""

    offset: int
    lexfile: int
    pos: str
    lemmas: tuple[str, ...]
    pointers: tuple[tuple[str, int, str], ...]


def read_synsets(path: str | os.PathLike) -> Iterator[Synset]:
    """Synsets of a WordNet ``data.noun`` (or ``data.verb``, ...) file, in file order."""
    with open(path, encoding="latin-1") as fh:
        for line in fh:
            if line.startswith("  "):  # licence header
                continue
            fields = line.partition(" | ")[0].split()
            n_words = int(fields[3], 16)
            # adjective lemmas may carry a syntactic marker: "galore(ip)"
            lemmas = tuple(fields[4 + 2 * i].split("(")[0] for i in range(n_words))
            k = 4 + 2 * n_words
            pointers = tuple((fields[j], int(fields[j + 1]), fields[j + 2])
                             for j in range(k + 1, k + 1 + 4 * int(fields[k]), 4))
            yield Synset(int(fields[0]), int(fields[1]), fields[2], lemmas, pointers)


def single_words(root: str | os.PathLike = WORDNET_DIR, pos: Iterable[str] = ("n", "v", "a")) -> list[str]:
    """WordNet's one-word lemmas of letters only ("antelope", "haircut"; not "north_america" or
    "3-d"), of the parts of speech ``pos``, sorted. Only the ``index.<pos>`` files are read."""
    words: set[str] = set()
    for name in (POS_FILES[p] for p in pos):
        with open(Path(root) / f"index.{name}", encoding="latin-1") as fh:
            words.update(w for line in fh if not line.startswith(" ") and (w := line.split(" ", 1)[0]).isalpha())
    return sorted(words)


@dataclass(frozen=True)
class Sense:
    """One meaning of a word: its synset (``Lexicon.synset``) and whether WordNet spells the lemma
    capitalised, i.e. a proper name (``Spain``, ``Luther``; not ``T-shirt``)."""

    pos: str  # data file: n, v, a (satellites included) or r
    offset: int
    lexfile: int
    proper: bool


class Lexicon:
    """Casefolded lemma (``_`` read as space) -> its senses, over all four parts of speech."""

    def __init__(self, root: str | os.PathLike = WORDNET_DIR) -> None:
        root = Path(root)
        self.senses_of: dict[str, set[Sense]] = defaultdict(set)
        self.exceptions: dict[str, set[str]] = defaultdict(set)
        self.synsets: dict[tuple[str, int], Synset] = {}
        self.tagged: Counter[str] = Counter()
        for pos, name in POS_FILES.items():
            with open(root / f"index.{name}", encoding="latin-1") as fh:
                for line in fh:
                    if not line.startswith(" "):  # lemma pos synset_cnt p_cnt ptr* sense_cnt tagsense_cnt ...
                        fields = line.split()
                        self.tagged[fields[0].replace("_", " ")] += int(fields[5 + int(fields[3])])
            for synset in read_synsets(root / f"data.{name}"):
                self.synsets[pos, synset.offset] = synset
                for lemma in synset.lemmas:
                    proper = lemma[:1].isupper() and lemma[1:2] != "-"
                    self.senses_of[lemma.replace("_", " ").casefold()].add(Sense(pos, synset.offset, synset.lexfile, proper))
            exc = root / f"{name}.exc"
            if exc.exists():
                for line in exc.read_text(encoding="latin-1").splitlines():
                    inflected, *bases = line.split()
                    self.exceptions[inflected.replace("_", " ")].update(b.replace("_", " ") for b in bases)
        self.senses_of.default_factory = None
        self.exceptions.default_factory = None

    def base_forms(self, word: str) -> set[str]:
        """``word`` and the lemmas it may inflect (``geese`` -> goose, ``coated`` -> coat)."""
        word = word.casefold()
        forms = {word} | self.exceptions.get(word, set())
        for pos_rules in _SUFFIXES.values():
            forms |= {word[: -len(suffix)] + repl for suffix, repl in pos_rules
                      if word.endswith(suffix) and len(word) > len(suffix) + 1}
        # "otto is" is no plural of "Otto I": a rule must leave a last word of 2+ letters
        return {f for f in forms if f in self.senses_of and (f == word or len(f.rsplit(" ", 1)[-1]) > 1)}

    def senses(self, word: str) -> set[Sense]:
        """All senses of ``word`` and of its base forms; empty when WordNet does not know it."""
        return {s for form in self.base_forms(word) for s in self.senses_of[form]}

    def synset(self, sense: Sense) -> Synset:
        return self.synsets[sense.pos, sense.offset]

    def targets(self, synset: Synset, symbols: Iterable[str]) -> list[Synset]:
        """Synsets that ``synset`` points to with any of ``symbols`` (``@i``, ``#p``, ``\\``, ...)."""
        symbols = set(symbols)
        return [self.synsets["a" if pos == "s" else pos, offset]
                for symbol, offset, pos in synset.pointers if symbol in symbols]

    def __contains__(self, word: str) -> bool:
        return bool(self.base_forms(word))
