"""Openclipart (Debian ``openclipart-png`` + ``openclipart-svg``) as an image-caption corpus.

Each PNG ``png/<path>.png`` pairs with ``svg/<path>.svg``, whose RDF metadata carries a title, a
description and keywords. That metadata is noisy in ways seen in the data:

- author names in titles and file names (``armadillo_architetto_fra_01``, ``Coccinella Rollandin``),
  and ``Clipart by Nicu Buculei - piggybank``;
- collection names instead of titles (``gramastar`` on 1,375 stars, ``Lemon SVG theme``,
  ``Part of the Flat Icon Collection (Wed Aug 25 23:29:46 2004)``);
- boilerplate descriptions (``EPS converted from http://aiga.org``, e-mail addresses);
- keywords that are tooling artefacts (``hash``, ``magick``, ``lemon_theme_icon``);
- 1,221 PNGs that are symlinks to another PNG of the set (the same drawing in two categories).

Captions are the cleaned title (or the cleaned file name when the title is unusable), the
keywords joined by commas, and the description; no templates, so no caption words that merely
leak the data source.

The image tower learns to write the words of these captions, so a word that names nothing a
person sees in the picture teaches it to write that word on unrelated images (a trained model
wrote "usa, oceania" on a hammer and "martin" on side cutters). ``WordFilter`` removes such words
from every caption and keyword, with WordNet 3.0 (Debian ``wordnet-base``) as the dictionary;
``dropped.jsonl`` gets one ``kind: word`` row per removed word per caption (field, word, reason)
and ``stats.json`` the counts by reason (``words_dropped``). The rules:

- ``licence_word``: licence, site and tool words (``LICENCE_WORDS``: public domain, clipart, svg,
  inkscape, vectorized, ...); a description sentence naming a licence or the drawing tool goes
  whole ("This work is hereby released into the Public Domain.", "Made with inkscape").
- ``author_name``: parts of any creator's or contributor's name in the corpus, not only the
  drawing's own (about 660 words: ``rollandin``, ``sergio``), unless the part is a common word
  (``park``, ``cliff``, ``navy``) or a place (left to the place rule).
- ``person_name``: words WordNet knows only as named individuals (``edison``, ``luther``), and on
  a drawing that names a person by a WordNet phrase (``Martin Luther King``) that phrase's words in
  all its captions (``martin``, ``king``); figures drawn with fixed attributes stay (``santa``).
- ``place_name_outside_flag_or_map``: proper names of places, or tied to one by WordNet (rivers,
  continents, nationalities: ``europe``, ``american``; not buildings such as the Eiffel Tower),
  kept only where the title, keywords or file name say flag, map, coat of arms, emblem, banner,
  globe, ... (``MAP_WORDS``); ``place_name_not_in_title``: even there, only the places the title
  or file name says stay ("canada" on Canada's flag), not the continent and country tags that
  openclipart puts on every flag of a region (``europe`` on 177 flags, ``america``, ``oceania``).
- ``no_visible_meaning``: words WordNet does not know in any part of speech, inflected forms
  included (codes, typos, foreign words: ``rpg``, ``baloon``, ``tasto``), and proper-name
  abbreviations of two letters (``md``, ``jr``); function words (``models.vocab.STOPWORDS``) and a
  few visible words WordNet 3.0 lacks (``usb``, ``hdd``: ``VISIBLE_WORDS``) stay. A glued compound
  is split instead when its halves are words (``roadsign`` -> "road sign", ``stats.json``'s
  ``compounds_split``).
- ``collection_tag`` (keywords only): a keyword on ``COLLECTION_MIN_DRAWINGS``+ drawings, 90%+ of
  them by one author, that those drawings' own titles, descriptions and file names rarely say and
  that has no noun sense for a visible thing (``geometry`` on 1,375 stars, ``webpage`` on buttons,
  ``subnational`` on flags); the list measured is in ``stats.json`` (``collection_tags``).

About 100 SVGs link an external bitmap that the package does not ship (``/home/andy/ant.png``,
``C:\\Documents and Settings\\...\\dell_opti.jpg``, ``Cloud 002.jpg``); their PNGs were rendered as a
"Linked Image Not Found" placeholder, so those drawings are dropped (``linked_bitmap_missing``,
``links_missing_bitmap``).

A caption left without words, or in which WordNet knows none of the words (or at most half of
three or more: foreign text), is dropped whole (``captions_dropped``: ``no_visible_words``,
``mostly_unknown_words``; a keyword dropped so is one word row); a drawing left with no caption is
dropped (``no_captions``).
"""
from __future__ import annotations

import functools
import hashlib
import html
import json
import logging
import os
import re
import struct
import time
import unicodedata
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from models.data.manifest import (
    DropReport,
    ManifestRecord,
    assign_split,
    corpus_stats,
    write_jsonl,
    write_manifest,
)
from models.data.wordnet import LEXFILES, WORDNET_DIR, Lexicon, Sense
from models.preprocess import DEFAULT_MAX_PIXELS, ImageError, load_image
from models.vocab import STOPWORDS

log = logging.getLogger(__name__)

PNG_ROOT = "/usr/share/openclipart/png"
SVG_ROOT = "/usr/share/openclipart/svg"
# Debian's copyright file: every drawing carries the Creative Commons Public Domain Dedication.
LICENCE = "Public Domain (Creative Commons Public Domain Dedication)"
ATTRIBUTION = ("Openclipart (https://openclipart.org) drawings, dedicated to the public domain; each author is named in "
               "the drawing's SVG metadata (Debian packages openclipart-png and openclipart-svg)")
# A title or description used by this many drawings names a collection, not a drawing; as a
# caption it would also make many images positives of one text (false negatives in a batch).
SHARED_TEXT_MIN = 20
# Drawings whose whole caption set is identical are indistinguishable to retrieval; keep a few.
MAX_SAME_CAPTIONS = 25
MAX_KEYWORDS = 8
MAX_DESCRIPTION_CHARS = 200
MIN_LETTERS = 3
# Keywords that are tool or collection artefacts, not words about the picture.
KEYWORD_STOPLIST = frozenset({
    "hash", "magick", "mapsym", "unsorted", "lemon theme icon", "signs and symbols", "united nations member",
    "special", "theme", "clip art", "clipart", "svg", "image", "images", "public domain", "media",
    "externalsource", "openclipart", "ocal", "inkscape",
})
# Whole captions that say nothing about the picture.
JUNK_CAPTIONS = frozenset({"untitled", "new document", "drawing", "image", "clipart", "clip art", "svg", "layer", "title"})
AGENT_ROLES = ("creator", "rights", "contributor")
# Agent titles that are licences or publishers, not people; their words must stay in titles.
NOT_AUTHORS = frozenset({"open clip art library", "openclipart", "public domain", "unknown", "anonymous"})

_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.I)
_EMAIL = re.compile(r"(?:\b(?:e-?mail|contact)\s*:?\s*)?\S+@\S+", re.I)
_YEAR_SUFFIX = re.compile(r",\s*(?:19|20)\d{2}\b")
_CLIPART_BY = re.compile(r"^\s*clip\s*-?\s*arts?\s+by\s+[^-–:]*(?:[-–:]\s*|$)", re.I)
_TIMESTAMP = re.compile(r"\(?\b(?:mon|tue|wed|thu|fri|sat|sun)\w*\s+\w{3}\s+\d{1,2}\s+[\d:]+\s+\d{4}\)?", re.I)
_EXTENSION = re.compile(r"\.(?:svgz?|png|jpe?g|gif|eps|ai|pdf|xcf)\b", re.I)
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_TAG = re.compile(r"<[^>]+>")
# Perl stringified references that leaked into some exports: "HASH(0x8a3ecd4)".
_PERL_REF = re.compile(r"\b(?:hash|array)\(0x[0-9a-f]+\)?", re.I)
_EDGE_PUNCT = " \t\n-–—:;,./|_{}*#~'\""  # brackets are balanced separately


def clean_caption(text: str, authors: Iterable[str] = (), filename: bool = False) -> str | None:
    """Clean one title, description or file name into a caption.

    Parameters
    ----------
    text : str
        Raw text (may contain XML entities, URLs, author names, file-name noise).
    authors : iterable of str, optional
        Creator names of the drawing; they are removed from the text.
    filename : bool
        Treat ``text`` as a file stem (``armadillo_architetto_fra_01``): underscores, numeric
        suffixes and truncated author names at the end are removed. Text without spaces that
        contains ``_`` is treated as a file name anyway.

    Returns
    -------
    str or None
        The caption, or None when nothing useful remains.
    """
    text = _PERL_REF.sub(" ", _TAG.sub(" ", html.unescape(text or "")))
    text = _CLIPART_BY.sub("", _EMAIL.sub(" ", _URL.sub(" ", text)))
    text = _YEAR_SUFFIX.sub(" ", _EXTENSION.sub("", _TIMESTAMP.sub(" ", text)))
    words = _author_words(authors)
    if filename or (" " not in text.strip() and "_" in text):
        tokens = _strip_authors_from_stem(_stem_tokens(text), words)
    else:
        tokens = _strip_authors_from_title(_remove_names(text, authors).replace("_", " ").split(), words)
        while tokens and re.fullmatch(r"#?0\d+|#\d+", tokens[-1]):  # file numbering: "01", "#302"
            tokens.pop()
        if tokens:  # "boat2", "wedding rings1", "BlueMan#302": numbering glued to the last word
            tokens[-1] = re.sub(r"(?<=[^\W\d_]{3})#?\d+$", "", tokens[-1])
    return _finish(" ".join(tokens))


def _author_words(authors: Iterable[str]) -> set[str]:
    """Casefolded name parts of at least 3 letters (shorter ones match too many real words)."""
    return {w for name in authors for w in re.findall(r"[^\W\d_]+", name.casefold()) if len(w) >= 3}


def _remove_names(text: str, authors: Iterable[str]) -> str:
    """Drop full author names and ``by <author>`` anywhere in the text."""
    for name in sorted((a for a in authors if a.strip()), key=len, reverse=True):
        text = re.sub(r"(?:\bby\s+)?" + re.escape(name.strip()), " ", text, flags=re.I)
    return text


def _stem_tokens(stem: str) -> list[str]:
    """File stem -> words: split camelCase and separators, drop numbering and single letters."""
    tokens = []
    for raw in re.split(r"[\s_.\-+]+", _CAMEL.sub(" ", stem)):
        token = re.sub(r"\d+[a-z]?$", "", raw)  # smiley111 -> smiley, 01a -> ""
        if len(token) > 1 and not re.search(r"\d", token):
            tokens.append(token)
    return tokens


def _is_author_part(token: str, words: set[str]) -> bool:
    """A token that is an author word, or a truncation of one (``archite``, ``matthe``)."""
    token = token.casefold().strip(_EDGE_PUNCT)
    return len(token) >= 3 and any(w.startswith(token) for w in words)


def _strip_authors_from_stem(tokens: list[str], words: set[str]) -> list[str]:
    """Debian names files ``<subject>_<truncated author>_<nn>``: cut at the first author part."""
    while tokens and tokens[0].casefold() in words:
        tokens = tokens[1:]
    for index, token in enumerate(tokens[1:], start=1):
        if _is_author_part(token, words):
            return tokens[:index]
    return tokens


def _strip_authors_from_title(tokens: list[str], words: set[str]) -> list[str]:
    """Drop author words trailing a title (``Coccinella Rollandin``); keep ``Jonathon's Duck``."""
    while tokens and tokens[-1].casefold().strip(_EDGE_PUNCT) in words:
        tokens = tokens[:-1]
    return tokens


def _finish(text: str) -> str | None:
    """Tidy punctuation and spacing; None when too little is left."""
    text = _tidy(text)
    if sum(ch.isalpha() for ch in text) < MIN_LETTERS or not re.search(r"[^\W\d_]{2,}", text):
        return None
    if text.casefold() in JUNK_CAPTIONS:
        return None
    return text


def _tidy(text: str) -> str:
    """Punctuation and spacing left right after removals."""
    text = re.sub(r"\(\s*[^\w\s]*\s*\)|\[\s*[^\w\s]*\s*\]", " ", text)  # brackets emptied by removals
    text = re.sub(r"\s+([,.;:!?])", r"\1", re.sub(r"\s+", " ", text))
    return _balance_brackets(text.strip(_EDGE_PUNCT))


def _balance_brackets(text: str) -> str:
    """Drop brackets left unpaired by the removals, keep ``Crawfish (B and W)`` whole."""
    for open_, close in ("()", "[]"):
        if text.count(open_) != text.count(close):
            text = text.replace(open_, " ").replace(close, " ")
        while text.startswith(open_) and text.endswith(close):
            text = text[1:-1]
    return re.sub(r"\s+", " ", text).strip(_EDGE_PUNCT)


def clean_keywords(keywords: Iterable[str], authors: Iterable[str] = ()) -> str | None:
    """Join the useful keywords as one caption (``"tux, penguin, linux"``).

    Parameters
    ----------
    keywords : iterable of str
        Raw ``rdf:li`` keywords.
    authors : iterable of str, optional
        Creator names; keywords naming them are dropped.

    Returns
    -------
    str or None
        Up to ``MAX_KEYWORDS`` distinct keywords joined by ``", "``, or None.
    """
    return ", ".join(keyword_list(keywords, authors)[:MAX_KEYWORDS]) or None


def keyword_list(keywords: Iterable[str], authors: Iterable[str] = ()) -> list[str]:
    """The distinct useful keywords, casefolded, in their order (``clean_keywords`` before the cut)."""
    names = {a.casefold().strip() for a in authors} | _author_words(authors)
    kept: list[str] = []
    for raw in keywords:
        word = re.sub(r"[\s_]+", " ", _PERL_REF.sub(" ", html.unescape(raw))).strip(_EDGE_PUNCT).casefold()
        if _useful_keyword(word, names) and word not in kept:
            kept.append(word)
    return kept


def _useful_keyword(word: str, names: set[str]) -> bool:
    if len(word) < 2 or word in KEYWORD_STOPLIST or word in names or not re.search(r"[^\W\d_]", word):
        return False
    if "@" in word or _URL.search(word):
        return False
    return not any(len(part) > 20 for part in word.split())  # run-together phrases


def truncate(text: str, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    """Shorten to whole sentences within ``limit``, else to whole words."""
    if len(text) <= limit:
        return text
    sentences = re.split(r"(?<=[.!?])\s+", text)
    kept = ""
    for sentence in sentences:
        if len(kept) + len(sentence) + 1 > limit:
            break
        kept = f"{kept} {sentence}".strip()
    return kept or text[:limit].rsplit(" ", 1)[0].rstrip(_EDGE_PUNCT)


@dataclass
class SvgMeta:
    """Metadata read from an SVG's RDF block."""

    title: str = ""
    description: str = ""
    keywords: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)


def read_svg_meta(path: str | os.PathLike) -> SvgMeta:
    """Read title, description, keywords and author names from an SVG's ``rdf:RDF`` block.

    Regular expressions on the metadata block only: the drawings' path data is most of each
    file, and SVG editors declare the namespaces on the root element, so the block alone is not
    a parseable XML document.
    """
    data = Path(path).read_bytes()
    start, end = data.find(b"<rdf:RDF"), data.find(b"</rdf:RDF>")
    if start < 0 or end < 0:
        return SvgMeta()
    block = data[start:end].decode("utf-8", "replace")
    authors = []
    for role in AGENT_ROLES:
        for agent in re.findall(rf"<dc:{role}\b[^>]*>(.*?)</dc:{role}>", block, re.S):
            authors += [_text(t) for t in re.findall(r"<dc:title\b[^>]*>(.*?)</dc:title>", agent, re.S)]
    # Agent blocks have their own dc:title; remove them before looking for the work's title.
    work = re.sub(r"<dc:(creator|rights|publisher|contributor)\b.*?</dc:\1>", " ", block, flags=re.S)
    subject = re.search(r"<dc:subject\b[^>]*>(.*?)</dc:subject>", work, re.S)
    return SvgMeta(
        title=_first(r"<dc:title\b[^>]*>(.*?)</dc:title>", work),
        description=_first(r"<dc:description\b[^>]*>(.*?)</dc:description>", work),
        keywords=[_text(k) for k in re.findall(r"<rdf:li\b[^>]*>(.*?)</rdf:li>", subject.group(1), re.S)] if subject else [],
        authors=list(dict.fromkeys(a for a in authors if a and a.casefold() not in NOT_AUTHORS)),
    )


def _first(pattern: str, text: str) -> str:
    match = re.search(pattern, text, re.S)
    return _text(match.group(1)) if match else ""


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", fragment))).strip()


# An <image> start tag, any namespace prefix (<image, <svg:image), attribute values may hold ">".
_IMAGE_TAG = re.compile(rb"""<(?:[\w.-]+:)?image(?=[\s/>])((?:[^>"']|"[^"]*"|'[^']*')*)""")
# Where an <image> finds its bitmap: href, xlink:href (any prefix), and Inkscape's fallback sodipodi:absref.
_IMAGE_HREF = re.compile(rb"""(?:^|\s)(?:[\w.-]+:)?(href|absref)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_XML_COMMENT = re.compile(rb"<!--.*?-->", re.S)
_WINDOWS_PATH = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")


def links_missing_bitmap(svg_path: str | os.PathLike, root: str | os.PathLike | None = None) -> str | None:
    """The first ``<image>`` link of an SVG to a bitmap that is not there, or None.

    Renderers draw such an image as a "Linked Image Not Found" placeholder, and the Debian PNGs of
    these drawings show just that. An ``<image>`` is fine when one of its links (``href``,
    ``xlink:href``, ``sodipodi:absref``) is a ``data:`` URI or names an existing file; relative
    paths are resolved against the SVG's folder (and its symlink target's), ``file:`` URIs decoded.
    Windows paths (``C:\\...``) and remote URLs never name a file here.

    Parameters
    ----------
    svg_path : path-like
        The SVG. An unreadable file gives None (nothing known to be missing); the build reports it
        as ``unreadable_svg`` when it reads the metadata.
    root : path-like, optional
        Only files under this folder count (the package's ``svg`` root): a bitmap elsewhere on this
        machine (``/usr/share/icons/...``) is not part of the package, and was not there when its
        PNG was rendered.

    Returns
    -------
    str or None
        The missing link as written in the SVG (entities decoded), or None.
    """
    try:
        data = Path(svg_path).read_bytes()
    except OSError:
        return None
    if b"<image" not in data and b":image" not in data:  # cheap: 98% of the drawings have no <image>
        return None
    if b"<!--" in data:
        data = _XML_COMMENT.sub(b" ", data)
    folders = list(dict.fromkeys([Path(svg_path).parent, Path(os.path.realpath(svg_path)).parent]))
    root_real = os.path.realpath(root) if root is not None else None
    for tag in _IMAGE_TAG.finditer(data):
        # The href first: it is what the drawing links and what the report shows; absref is a fallback.
        links = [html.unescape((a or b).decode("utf-8", "replace")).strip()
                 for _, a, b in sorted(_IMAGE_HREF.findall(tag.group(1)), key=lambda m: m[0] != b"href")]
        if links and not any(_bitmap_present(link, folders, root_real) for link in links):
            return links[0]
    return None


def _bitmap_present(link: str, folders: list[Path], root_real: str | None) -> bool:
    """A ``data:`` URI, or a path/``file:`` URI naming an existing file (under ``root_real`` if given)."""
    if link[:5].casefold() == "data:":
        return True
    if link[:5].casefold() == "file:":
        link = urllib.parse.unquote(urllib.parse.urlsplit(link).path)
    elif not link or _WINDOWS_PATH.match(link) or re.match(r"^[A-Za-z][\w+.-]*://", link) or link.startswith("#"):
        return False  # empty, C:\..., http://..., a fragment: no bitmap file here
    candidates = {link, urllib.parse.unquote(link), link.replace("\\", "/")}
    for candidate in candidates:
        for path in ([Path(candidate)] if os.path.isabs(candidate) else [f / candidate for f in folders]):
            try:
                if not path.is_file():
                    continue
            except (OSError, ValueError):  # name too long, NUL byte
                continue
            if root_real is None or os.path.realpath(path).startswith(root_real.rstrip(os.sep) + os.sep):
                return True
    return False


# ----------------------------------------------------------------------------- words that show nothing
# Licence, tool and site words; multi-word ones are matched as phrases.
LICENCE_WORDS = frozenset({
    "public domain", "publicdomain", "creative commons", "licence", "license", "copyright", "copyleft", "gpl", "lgpl",
    "cc", "pd", "clipart", "cliparts", "clip art", "clip arts", "openclipart", "ocal", "svg", "png", "eps", "inkscape",
    "sodipodi", "remix", "vector", "vectorized", "vectorization", "autotraced", "wikipedia", "openoffice",
})
# A description sentence that names a licence or the drawing tool says nothing about the picture ("This
# work is dedicated to the Public Domain", "Made with inkscape").
_LICENCE_SENTENCE = re.compile(
    r"\b(?:public\s+domain|licen[cs]e[ds]?|copyright|creative\s+commons|gpl|inkscape|sodipodi)\b", re.I)
# Place names stay on drawings whose title, keywords or file name say one of these.
MAP_WORDS = frozenset({"flag", "map", "coat of arms", "emblem", "banner", "ensign", "pennant", "heraldry", "blazon",
                       "atlas", "globe", "geography"})
# Visible things WordNet 3.0 (2006) lacks or knows only as a name, checked by eye among the corpus words.
VISIBLE_WORDS = frozenset({"usb", "hdd", "cdrom", "vhs", "wc", "smartphone", "xbox", "manga", "pc", "lcd", "gps"})
# Figures drawn with fixed attributes (Santa's red suit) whom WordNet files as individuals.
VISIBLE_NAMES = frozenset({"santa", "santa claus", "father christmas", "jesus", "jesus christ", "christ"})
# Function words beyond the project's STOPWORDS that WordNet (open classes only) does not list.
FUNCTION_WORDS = STOPWORDS | {"without", "within", "upon", "onto", "towards", "among", "amongst", "despite", "unto",
                              "something", "anything", "everything", "someone", "anyone", "everyone", "thy"}
# Noun lexicographer files of things one can see: a concentrated keyword with such a sense is content, not a tag.
VISIBLE_LEXFILES = frozenset(LEXFILES[f"noun.{name}"] for name in (
    "animal", "artifact", "body", "food", "location", "object", "person", "phenomenon", "plant", "shape", "substance"))
# Pointers from a proper name to a place: part/member holonym or meronym, pertainym, region domain.
_GEO_POINTERS = ("#p", "%p", "#m", "\\", ";r")
COLLECTION_MIN_DRAWINGS = 8
COLLECTION_AUTHOR_SHARE = 0.9
COLLECTION_MENTIONED_MAX = 0.2
MAX_PHRASE_WORDS = 3
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def _fold(text: str) -> str:
    """Casefolded, accents removed (``Aragón`` -> ``aragon``, as WordNet spells it)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class Context(NamedTuple):
    """One drawing's facts for the word rules: whether it is a flag or map, the words of its title
    and file name (the places it shows), and the words of the people it names (``martin``,
    ``luther``, ``king``: dropped from all of its captions, also where alone they could mean a bird
    or a monarch)."""

    on_map: bool = False
    names: frozenset[str] = frozenset()
    subject: frozenset[str] = frozenset()


class Filtered(NamedTuple):
    """``WordFilter.filter_text``'s answer: the text left (None if the caption goes), ``(word,
    reason)`` of each removal, and the caption's reason when it goes whole."""

    text: str | None
    dropped: list[tuple[str, str]]
    reason: str | None


class WordFilter:
    """Which words of a caption name something a person sees (the rules: module docstring).

    Parameters
    ----------
    lexicon : Lexicon
        WordNet 3.0.
    author_words : iterable of str
        Casefolded name parts of every creator and contributor in the corpus (``for_drawings``).
    collection_tags : iterable of str
        Keywords that mark one author's batch, not the drawing (``for_drawings``).
    """

    def __init__(self, lexicon: Lexicon, author_words: Iterable[str] = (), collection_tags: Iterable[str] = ()) -> None:
        self.lexicon = lexicon
        self.author_words = frozenset(author_words)
        self.collection_tags = frozenset(collection_tags)
        self.compounds_split = 0

    @classmethod
    def for_drawings(cls, metas: list[tuple[str, SvgMeta]], lexicon: Lexicon) -> WordFilter:
        """Author words and collection tags measured on ``(file stem, metadata)`` of the whole corpus."""
        self = cls(lexicon)
        self.author_words = frozenset(w for _, m in metas for w in _author_words(m.authors) if self._name_part(w))
        self.collection_tags = frozenset(self._collection_tags(metas))
        return self

    def _name_part(self, word: str) -> bool:
        """A name part that is no common word (``rollandin``, ``allen``; not ``park``, ``navy``)."""
        senses = self.lexicon.senses(word)
        return word not in FUNCTION_WORDS and all(s.proper for s in senses) and not any(map(self._geographic, senses))

    def _collection_tags(self, metas: list[tuple[str, SvgMeta]]) -> set[str]:
        """Keywords on ``COLLECTION_MIN_DRAWINGS``+ drawings, nearly all by one author, that the drawings'
        own titles, descriptions and file names rarely say, and that have no visible WordNet sense."""
        uses: dict[str, list[tuple[str, bool]]] = defaultdict(list)
        for stem, meta in metas:
            own = re.sub(r"[\W\d_]+", "", f"{meta.title} {meta.description} {stem}".casefold())
            for keyword in keyword_list(meta.keywords, meta.authors):
                forms = {keyword} | self.lexicon.base_forms(keyword)
                mentioned = any(re.sub(r"[\W\d_]+", "", f) in own for f in forms)
                uses[keyword].append((meta.authors[0] if meta.authors else "", mentioned))
        tags = set()
        for keyword, rows in uses.items():
            author, top = Counter(a for a, _ in rows).most_common(1)[0]
            if (author and len(rows) >= COLLECTION_MIN_DRAWINGS and top >= COLLECTION_AUTHOR_SHARE * len(rows)
                    and sum(m for _, m in rows) <= COLLECTION_MENTIONED_MAX * len(rows) and not self._visible(keyword)):
                tags.add(keyword)
        return tags

    def _visible(self, phrase: str) -> bool:
        """Whether the phrase, or one of its words, has a noun sense in a ``VISIBLE_LEXFILES`` file."""
        phrase = self._split_compound(phrase) or phrase
        return any(s.pos == "n" and s.lexfile in VISIBLE_LEXFILES
                   for unit in {phrase, *phrase.split()} for s in self.lexicon.senses(unit))

    def context(self, meta: SvgMeta, stem: str = "") -> Context:
        """What the rules need to know of one drawing besides the caption at hand."""
        words = _WORD.findall(f"{meta.title} {' '.join(meta.keywords)} {stem}".replace("_", " ").casefold())
        forms = {f for w in words for f in (w, *self.lexicon.base_forms(w))}
        on_map = bool(forms & MAP_WORDS) or "coat of arms" in " ".join(words)
        names = frozenset(w for text in (meta.title, meta.description, *meta.keywords) for _, _, key in self._units(text)
                          if " " in key and self.reason(key) == "person_name" for w in key.split()
                          if w not in FUNCTION_WORDS)
        return Context(on_map, names, frozenset(_fold(w) for w in _WORD.findall(f"{meta.title} {stem}".replace("_", " "))))

    def reason(self, unit: str, context: Context = Context()) -> str | None:
        """Why a word or phrase (casefolded) names nothing visible, or None to keep it."""
        if unit in LICENCE_WORDS:
            return "licence_word"
        head = re.split(r"['’]", unit)[0]  # rubik's -> rubik, doesn't -> doesn
        if len(head) < 2 or head in FUNCTION_WORDS or unit in VISIBLE_NAMES:
            return None
        if head in context.names:
            return "person_name"
        if head in self.author_words:
            return "author_name"
        senses = self.lexicon.senses(head)
        if not senses:
            return None if head in VISIBLE_WORDS else "no_visible_meaning"
        if not all(s.proper for s in senses) or head in VISIBLE_WORDS:
            return None
        geographic = any(self._geographic(s) for s in senses)
        if geographic and context.on_map:  # "canada" on Canada's flag; not "america", "oceania" tagging flags
            return None if set(re.split(r"[\s-]+", head)) <= context.subject else "place_name_not_in_title"
        if len(head) <= 2:  # abbreviations and foreign words: "md", "jr", "de"
            return "no_visible_meaning"
        if geographic:
            return "place_name_outside_flag_or_map"
        if all(s.lexfile == LEXFILES["noun.person"] and self._individual(s) for s in senses):
            return "person_name"
        return None

    def _geographic(self, sense: Sense) -> bool:
        """A place (noun.location), or a name tied to one (a river, a continent, a nationality), but no
        building (``Eiffel Tower``, noun.artifact)."""
        if sense.pos == "n" and sense.lexfile == LEXFILES["noun.location"]:
            return True
        if sense.pos == "n" and sense.lexfile == LEXFILES["noun.artifact"]:
            return False
        targets = self.lexicon.targets(self.lexicon.synset(sense), _GEO_POINTERS)
        return any(t.pos == "n" and t.lexfile == LEXFILES["noun.location"] for t in targets)

    def _individual(self, sense: Sense) -> bool:
        """An instance (``Luther``, ``Santa``), not a class of people (``Aztec``)."""
        return any(symbol == "@i" for symbol, _, _ in self.lexicon.synset(sense).pointers)

    def _split_compound(self, word: str) -> str | None:
        """``roadsign`` -> ``road sign``: a word WordNet lacks that is two words it knows (the pair a
        WordNet phrase, or both of 4+ letters, common and seen in SemCor: not ``puls ante``)."""
        if len(word) < 6 or not word.isalpha() or word in self.lexicon or word in self.author_words:
            return None
        best = None
        for i in range(2, len(word) - 1):
            pair = f"{word[:i]} {word[i:]}"
            if pair in self.lexicon:
                return pair
            if min(i, len(word) - i) >= 4 and all(self._common(w) for w in pair.split()):
                best = max(best or pair, pair, key=lambda p: min(map(len, p.split())))
        return best

    def _common(self, word: str) -> bool:
        return (word not in FUNCTION_WORDS and word not in self.author_words and self.lexicon.tagged[word] > 0
                and any(not s.proper for s in self.lexicon.senses(word)))

    def _units(self, text: str) -> Iterator[tuple[int, int, str]]:
        """``(start, end, casefolded text)`` of the words, and of the WordNet phrases ("coat of arms",
        "north america", "t-shirt") or licence phrases, that make up ``text``."""
        words = list(_WORD.finditer(text))
        i = 0
        while i < len(words):
            for n in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
                group = words[i:i + n]
                if any(text[a.end():b.start()] not in (" ", "-") for a, b in zip(group, group[1:], strict=False)):
                    continue
                key = _fold(text[group[0].start():group[-1].end()])
                if key not in self.lexicon and key.replace("-", " ") in self.lexicon:
                    key = key.replace("-", " ")  # "digital-camera"
                if n == 1 or key in LICENCE_WORDS or key in self.lexicon:
                    break
            yield group[0].start(), group[-1].end(), key
            i += n

    def filter_text(self, text: str, context: Context = Context(), sentences: bool = False) -> Filtered:
        """The text without the words that name nothing visible (glued compounds split).

        With ``sentences``, a sentence that names a licence goes whole (reported as one "word"). The
        text is None, with the caption's reason, when no word is left (``no_visible_words``) or WordNet
        knows none of its words, or at most half of three or more (``mostly_unknown_words``: foreign
        text, codes).
        """
        dropped: list[tuple[str, str]] = []
        if sentences:
            kept_sentences = []
            for sentence in re.split(r"(?<=[.!?])\s+", text):
                if _LICENCE_SENTENCE.search(sentence):
                    dropped.append((sentence, "licence_word"))
                else:
                    kept_sentences.append(sentence)
            text = " ".join(kept_sentences)
        out, pos, content, unknown, splits = [], 0, 0, 0, 0
        for start, end, key in self._units(text):
            why, split = self.reason(key, context), None
            if why == "no_visible_meaning" and (split := self._split_compound(key)):
                parts = [split] if split in self.lexicon else split.split()
                why = next((r for r in (self.reason(p, context) for p in parts) if r), None)
            words = sum(len(w) > 1 and w not in FUNCTION_WORDS for w in re.split(r"[\s-]+", key))
            content += words
            unknown += words if why == "no_visible_meaning" else 0
            out.append(text[pos:start])
            if why:
                dropped.append((text[start:end].casefold(), why))
                if out[-1].endswith("-"):  # arrow-down-blue -> arrow-blue, kallisti-grenade -> grenade
                    out[-1] = out[-1][:-1]
                elif text.startswith("-", end):
                    end += 1
            else:
                out.append(split or text[start:end])
                splits += split is not None
            pos = end
        out.append(text[pos:])
        kept = _tidy("".join(out))
        dropped = list(dict.fromkeys(dropped))
        if unknown and (unknown == content or (content >= 3 and 2 * unknown >= content)):
            return Filtered(None, dropped, "mostly_unknown_words")
        if not re.search(r"[^\W\d_]", kept):
            return Filtered(None, dropped, "no_visible_words")
        self.compounds_split += splits
        return Filtered(kept, dropped, None)

    def filter_keywords(
        self, keywords: list[str], context: Context = Context()
    ) -> tuple[list[str], list[tuple[str, str]]]:
        """Keywords after ``filter_text`` (collection tags go whole), distinct, in order, and
        ``(word, reason)`` of each removal (a keyword dropped whole for its unknown words included)."""
        kept: list[str] = []
        dropped: list[tuple[str, str]] = []
        for keyword in keywords:
            if keyword in self.collection_tags:
                dropped.append((keyword, "collection_tag"))
                continue
            text, removed, reason = self.filter_text(keyword, context)
            dropped += removed
            if reason == "mostly_unknown_words" and " " in keyword:
                dropped.append((keyword, reason))
            if text and text.casefold() not in kept:
                kept.append(text.casefold())
        return kept, list(dict.fromkeys(dropped))


def png_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """``(width, height)`` from the PNG header, or None if the file is not a PNG.

    Reads 24 bytes instead of decoding: the full decode of 6,900 drawings costs more than the
    rest of the build.
    """
    with open(path, "rb") as fh:
        head = fh.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


@dataclass
class _Drawing:
    """One unique PNG with its metadata while the build runs."""

    id: str
    png: Path
    svg: Path
    meta: SvgMeta
    size: tuple[int, int]
    aliases: list[str] = field(default_factory=list)
    captions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def build_openclipart_manifest(
    out_dir: str | os.PathLike,
    png_root: str | os.PathLike = PNG_ROOT,
    svg_root: str | os.PathLike = SVG_ROOT,
    seed: int = 0,
    val_fraction: float = 0.05,
    test_fraction: float = 0.10,
    limit: int | None = None,
    verify_images: bool = False,
    wordnet_dir: str | os.PathLike = WORDNET_DIR,
) -> dict:
    """Build the openclipart manifest, a report of what was dropped, and statistics.

    Parameters
    ----------
    out_dir : path-like
        Gets ``manifest.jsonl``, ``dropped.jsonl`` and ``stats.json``.
    png_root, svg_root : path-like
        Roots of the Debian packages; ``png/<p>.png`` pairs with ``svg/<p>.svg``.
    seed : int
        Seeds the split hash (and which near-duplicates are kept).
    val_fraction, test_fraction : float
        Split shares; the rest is train.
    limit : int, optional
        Only the first ``limit`` PNG files in path order (for tests).
    verify_images : bool
        Fully decode every PNG with Pillow instead of checking its header only.
    wordnet_dir : path-like
        WordNet 3.0 data files (Debian ``wordnet-base``), for the word rules.

    Returns
    -------
    dict
        The statistics written to ``stats.json``.
    """
    started = time.perf_counter()
    png_root, svg_root, out_dir = Path(png_root), Path(svg_root), Path(out_dir)
    if not (Path(wordnet_dir) / "data.noun").is_file():
        raise FileNotFoundError(f"WordNet 3.0 not found in {wordnet_dir}: apt-get install wordnet-base")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = DropReport("path")
    pngs = sorted(png_root.rglob("*.png"))[:limit]
    drawings = _unique_drawings(pngs, png_root, svg_root, report, verify_images)
    words = WordFilter.for_drawings([(d.png.stem, d.meta) for d in drawings], _lexicon(str(wordnet_dir)))
    _caption_drawings(drawings, report, words)
    drawings = _cap_same_captions(drawings, report, seed)
    records = [_record(d, seed, val_fraction, test_fraction) for d in drawings]
    write_manifest(out_dir / "manifest.jsonl", records)
    write_jsonl(out_dir / "dropped.jsonl", report.rows, sort_keys=False)
    params = {"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction, "limit": limit,
              "shared_text_min": SHARED_TEXT_MIN, "max_same_captions": MAX_SAME_CAPTIONS,
              "collection_min_drawings": COLLECTION_MIN_DRAWINGS, "collection_author_share": COLLECTION_AUTHOR_SHARE,
              "collection_mentioned_max": COLLECTION_MENTIONED_MAX}
    stats = _stats(len(pngs), records, report, params, time.perf_counter() - started)
    stats["words_dropped"] = report.counts("word")
    stats["compounds_split"] = words.compounds_split
    stats["collection_tags"] = sorted(words.collection_tags)
    stats["author_words"] = len(words.author_words)
    stats |= {"licence": LICENCE, "attribution": ATTRIBUTION}
    (out_dir / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log.info("openclipart: kept %d of %d PNGs in %.1fs", len(records), len(pngs), stats["seconds"])
    return stats


@functools.lru_cache(maxsize=1)
def _lexicon(wordnet_dir: str) -> Lexicon:
    return Lexicon(wordnet_dir)  # 3 s; kept for the next build in the same process


def _unique_drawings(
    pngs: list[Path], png_root: Path, svg_root: Path, report: DropReport, verify: bool
) -> list[_Drawing]:
    """One drawing per real file: symlinked copies become aliases of their target."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for png in pngs:
        groups[os.path.realpath(png)].append(png)
    drawings = []
    for real, members in groups.items():
        # The file itself is canonical when it is in the set; a symlink's category is an alias.
        members.sort(key=lambda p: (str(p) != real, str(p)))
        canonical, copies = members[0], members[1:]
        drawing = _open_drawing(canonical, png_root, svg_root, report, verify)
        for copy in copies:
            report.image(copy, "duplicate_image", same_as=str(canonical))
        if drawing:
            drawing.aliases = [_rel_id(c, png_root) for c in copies]
            drawings.append(drawing)
    drawings.sort(key=lambda d: d.id)
    return drawings


def _rel_id(png: Path, png_root: Path) -> str:
    return png.relative_to(png_root).with_suffix("").as_posix()


def _open_drawing(png: Path, png_root: Path, svg_root: Path, report: DropReport, verify: bool) -> _Drawing | None:
    """Check the PNG, find and read its SVG; report and return None when either fails."""
    size = png_size(png)
    if size is not None and size[0] * size[1] > DEFAULT_MAX_PIXELS:
        # e.g. a 231-megapixel microchip drawing: a decompression bomb for every consumer
        report.image(png, "too_many_pixels", width=size[0], height=size[1])
        return None
    if size is None or (verify and not _decodes(png)):
        report.image(png, "unreadable_png")
        return None
    svg = svg_root / png.relative_to(png_root).with_suffix(".svg")
    if not svg.exists():
        report.image(png, "missing_svg", svg=str(svg))
        return None
    href = links_missing_bitmap(svg, root=svg_root)
    if href is not None:
        report.image(png, "linked_bitmap_missing", svg=str(svg), href=href,
                     detail=f"links a bitmap the package lacks ({href}): its PNG is a 'Linked Image Not Found' placeholder")
        return None
    try:
        meta = read_svg_meta(svg)
    except OSError as error:
        report.image(png, "unreadable_svg", svg=str(svg), error=str(error))
        return None
    return _Drawing(id=_rel_id(png, png_root), png=png, svg=svg, meta=meta, size=size)


def _decodes(png: Path) -> bool:
    try:
        load_image(png)
        return True
    except ImageError:
        return False


def _caption_drawings(drawings: list[_Drawing], report: DropReport, words: WordFilter) -> None:
    """Fill ``captions``/``sources`` of every drawing, reporting each caption and word left out."""
    titles = [clean_caption(d.meta.title, d.meta.authors) for d in drawings]
    descriptions = [_clean_description(d.meta) for d in drawings]
    shared = Counter(_key(t) for t in titles + descriptions if t)
    for drawing, title, description in zip(drawings, titles, descriptions, strict=True):
        context = words.context(drawing.meta, drawing.png.stem)
        description = _shared_check(drawing, "description", description, shared, report)
        candidates = [
            ("title", _title_caption(drawing, title, shared, report, words, context)),
            ("keywords", _keyword_caption(drawing, report, words, context)),
            ("description", _filter_words(drawing, "description", description, report, words, context)),
        ]
        _add_distinct(drawing, candidates, report)


def _filter_words(
    drawing: _Drawing, name: str, text: str | None, report: DropReport, words: WordFilter, context: Context
) -> str | None:
    """``text`` without the words that show nothing; each removal reported, and the caption if none is left."""
    if not text:
        return text
    kept, dropped, reason = words.filter_text(text, context, sentences=name == "description")
    report.words(drawing.png, name, dropped)
    if kept and dropped:
        kept = _finish(kept)  # too little left, or only "image"
        reason = reason or (None if kept else "no_visible_words")
    if reason:
        report.caption(drawing.png, reason, name, text)
    return kept


def _keyword_caption(drawing: _Drawing, report: DropReport, words: WordFilter, context: Context) -> str | None:
    """The keywords that show something, at most ``MAX_KEYWORDS``, joined by commas."""
    keywords = keyword_list(drawing.meta.keywords, drawing.meta.authors)
    kept, dropped = words.filter_keywords(keywords, context)
    report.words(drawing.png, "keywords", dropped)
    if keywords and not kept:
        report.caption(drawing.png, "no_visible_words", "keywords", ", ".join(keywords))
    return ", ".join(kept[:MAX_KEYWORDS]) or None


def _clean_description(meta: SvgMeta) -> str | None:
    text = clean_caption(meta.description, meta.authors)
    return truncate(text) if text else None


def _key(text: str) -> str:
    """Comparison key: casefolded letters and digits only."""
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def _shared_check(drawing: _Drawing, name: str, text: str | None, shared: Counter, report: DropReport) -> str | None:
    if text and shared[_key(text)] >= SHARED_TEXT_MIN:
        report.caption(drawing.png, f"shared_{name}", name, text)
        return None
    return text


def _title_caption(
    drawing: _Drawing, title: str | None, shared: Counter, report: DropReport, words: WordFilter, context: Context
) -> str | None:
    """The cleaned title; the cleaned file name when the title is empty or a collection name."""
    if title is None and drawing.meta.title:
        report.caption(drawing.png, "title_empty_after_cleaning", "title", drawing.meta.title)
    title = _filter_words(drawing, "title", _shared_check(drawing, "title", title, shared, report), report, words,
                          context)
    if title:
        return title
    stem = clean_caption(drawing.png.stem, drawing.meta.authors, filename=True)
    if stem is None:
        report.caption(drawing.png, "filename_empty_after_cleaning", "filename", drawing.png.stem)
        return None
    stem = _filter_words(drawing, "filename", stem, report, words, context)
    if stem:
        drawing.sources.append("filename")
    return stem


def _add_distinct(drawing: _Drawing, candidates: list[tuple[str, str | None]], report: DropReport) -> None:
    """Append captions whose key differs from the ones already kept."""
    seen: set[str] = set()
    for name, text in candidates:
        if not text:
            continue
        if _key(text) in seen:
            report.caption(drawing.png, "duplicate_caption", name, text)
            continue
        seen.add(_key(text))
        drawing.captions.append(text)
        if not (name == "title" and "filename" in drawing.sources):
            drawing.sources.append(name)
    if not drawing.captions:
        report.image(drawing.png, "no_captions", title=drawing.meta.title)


def _cap_same_captions(drawings: list[_Drawing], report: DropReport, seed: int) -> list[_Drawing]:
    """Keep at most ``MAX_SAME_CAPTIONS`` drawings per identical caption set (seeded choice)."""
    groups: dict[tuple[str, ...], list[_Drawing]] = defaultdict(list)
    for drawing in drawings:
        if drawing.captions:
            groups[tuple(_key(c) for c in drawing.captions)].append(drawing)
    kept = []
    for group in groups.values():
        group.sort(key=lambda d: hashlib.sha1(f"{seed}:{d.id}".encode()).digest())
        kept += group[:MAX_SAME_CAPTIONS]
        for drawing in group[MAX_SAME_CAPTIONS:]:
            report.image(drawing.png, "same_captions_as_many_others", captions=drawing.captions)
    return sorted(kept, key=lambda d: d.id)


def _record(drawing: _Drawing, seed: int, val_fraction: float, test_fraction: float) -> ManifestRecord:
    meta = {
        "source": "openclipart",
        "category": str(Path(drawing.id).parent.as_posix()),
        "caption_sources": drawing.sources,
        "title_raw": drawing.meta.title,
        "keywords_raw": drawing.meta.keywords,
        "authors": drawing.meta.authors,
        "svg": str(drawing.svg),
        "width": drawing.size[0],
        "height": drawing.size[1],
    }
    if drawing.aliases:
        meta["aliases"] = drawing.aliases
    split = assign_split(drawing.id, seed, val_fraction, test_fraction)
    return ManifestRecord(id=drawing.id, image=str(drawing.png), captions=drawing.captions, split=split, meta=meta)


def _stats(n_png: int, records: list[ManifestRecord], report: DropReport, params: dict, seconds: float) -> dict:
    return {
        "png_files": n_png,
        **corpus_stats(records, report.counts("image"), report.counts("caption")),
        "params": params,
        "seconds": round(seconds, 2),
    }
