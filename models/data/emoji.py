"""Emoji artwork from npm packages as image-caption corpora: Google's and Twitter's drawings to train, OpenMoji's to test.

Three sources, all fetched with ``npm pack`` into a cache folder and extracted once:

- ``google``: ``emoji-datasource-google`` (64 px PNGs and Unicode names). Training data: every
  emoji whose concept is held out (:func:`heldout_concept`) is dropped, the rest is split
  train/val/test by a seeded hash. Each emoji gets up to three captions: its name as a short
  phrase (``FACE WITH TEARS OF JOY`` -> ``face with tears of joy``, ``Germany Flag`` -> ``flag of
  germany``), its CLDR label from ``emojibase-data`` when that says something the name does not
  (``CLOCK FACE NINE OCLOCK`` is ``nine o'clock``), and a keyword list from the short names,
  the subcategory and the CLDR keywords (``apple, food, fruit, red``).
- ``twitter``: ``emoji-datasource-twitter`` (Twemoji, CC-BY 4.0): the same ``emoji.json``, so the
  same captions, held-out concepts and splits as ``google``, drawn by another artist; record ids
  are ``twitter-<hexcode>``.
- ``openmoji``: ``openmoji`` (colour SVGs rendered to 128 px PNGs with ``rsvg-convert`` from
  Debian's ``librsvg2-bin``). A held-out evaluation source: every record is ``test`` and is
  OpenMoji's drawing of a Unicode emoji that Google also draws but whose concept is held out,
  so no drawing of it (in any split, gender, hair or skin variant) is in the Google manifest.
  Its one caption is the caption the Google builder gives that emoji's name (``red apple``,
  ``dog face``), so both sources name a concept identically. The Google side is computed here
  from the whole cached Google package, not from a manifest, so it does not depend on how (or
  whether, or with what ``limit``) the Google manifest was built. OpenMoji's extras (brands, UI
  marks, ...) are not Unicode emoji and are left out.

The concept split: :func:`concept_key` maps an emoji to its variant group (:func:`split_group`:
gender, hair and person variants together, skin tones and ``FE0F`` removed), and a seeded hash
of that key holds out about a quarter of all concepts for OpenMoji.

What is dropped and why goes to ``dropped.jsonl`` (one JSON object per emoji, with ``reason``);
captions left out of a kept emoji are reported there too (``kind: "caption"``). Images keep their
transparency: :func:`models.preprocess.to_rgb` composites it onto white wherever images are read.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from models.data.manifest import (
    DropReport,
    ManifestRecord,
    assign_split,
    corpus_stats,
    write_jsonl,
    write_manifest,
)
from models.preprocess import ImageError, load_image

log = logging.getLogger(__name__)

# Training sets: the ``emoji-datasource-<set>`` packages share one ``emoji.json``; each draws its
# own ``img/<set>/64/`` PNGs. Google's Noto (Apache-2.0) and Twitter's Twemoji (CC-BY 4.0) are
# openly licensed; Apple's and Facebook's drawings are not, and are not used.
DATASOURCE_SETS = ("google", "twitter")
# Each set's licence and the attribution it asks for (written to stats.json; models.model_card quotes it).
LICENCES = {
    "google": ("Apache-2.0", "Noto Emoji by Google (https://github.com/googlefonts/noto-emoji), Apache License 2.0; "
                             "packaged as emoji-datasource-google by Cal Henderson (https://github.com/iamcal/emoji-data)"),
    "twitter": ("CC-BY-4.0", "Twemoji graphics by Twitter, Inc and other contributors (https://github.com/jdecked/twemoji), "
                             "licensed under CC-BY 4.0 (https://creativecommons.org/licenses/by/4.0/); packaged as "
                             "emoji-datasource-twitter by Cal Henderson (https://github.com/iamcal/emoji-data)"),
    "openmoji": ("CC-BY-SA-4.0", "OpenMoji, the open-source emoji and icon project (https://openmoji.org), "
                                 "licensed under CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/)"),
}
SOURCES = (*DATASOURCE_SETS, "openmoji")
DATASOURCE_VERSION = "16.0.0"


def datasource_package(image_set: str) -> tuple[str, str]:
    """The npm package (name, version) of one ``emoji-datasource`` set."""
    return f"emoji-datasource-{image_set}", DATASOURCE_VERSION


GOOGLE_PACKAGE = datasource_package("google")
EMOJIBASE_PACKAGE = ("emojibase-data", "16.0.3")
OPENMOJI_PACKAGE = ("openmoji", "17.0.0")
DEFAULT_CACHE = Path("var/cache/npm")
OPENMOJI_SIZE = 128
# Share of emoji concepts held out of the Google training set and evaluated on OpenMoji drawings.
HELDOUT_FRACTION = 0.25
HELDOUT_REASON = "held-out concept (evaluated on OpenMoji)"
MAX_KEYWORDS = 10
# A keyword list shared by this many emoji (all country flags: "flag, country") is no caption.
SHARED_KEYWORDS_MIN = 20

# Code points that modify or join emoji; none names a concept by itself.
VS16, ZWJ, KEYCAP = "FE0F", "200D", "20E3"
SKIN_TONES = frozenset({"1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF"})
HAIR = frozenset({"1F9B0", "1F9B1", "1F9B2", "1F9B3"})
GENDER_SIGNS = frozenset({"2640", "2642"})
# man/woman/person, boy/girl/child, old man/old woman/older person: one split group each.
PERSON_GROUPS = {"1F468": "1F9D1", "1F469": "1F9D1", "1F466": "1F9D2", "1F467": "1F9D2",
                 "1F474": "1F9D3", "1F475": "1F9D3"}
# Subcategory -> keywords, where splitting its name on "-" and "&" gives words about no picture.
SUBCATEGORY_WORDS = {
    "alphanum": (), "av-symbol": (), "other-object": (), "other-symbol": ("symbol",),
    "place-other": ("place",), "plant-other": ("plant",), "person-symbol": ("person",),
    "country-flag": ("flag", "country"), "subdivision-flag": ("flag",), "hand-prop": ("hand",),
    "hand-fingers-closed": ("hand", "fingers"), "hand-fingers-open": ("hand", "fingers"),
    "hand-fingers-partial": ("hand", "fingers"), "hand-single-finger": ("hand", "finger"),
    "body-parts": ("body part",), "person-role": ("person",), "person-activity": ("person", "activity"),
    "face-neutral-skeptical": ("face", "neutral", "skeptical"), "face-affection": ("face", "affection"),
    "transport-ground": ("transport",), "transport-air": ("transport", "air"),
    "transport-water": ("transport", "water"), "transport-sign": ("sign",),
    "place-map": ("map",), "place-geographic": ("place", "geography"), "place-building": ("building",),
    "place-religious": ("religious place",), "food-prepared": ("food",), "food-asian": ("food", "asian food"),
    "food-sweet": ("sweet", "food"), "book-paper": ("book", "paper"), "award-medal": ("award", "medal"),
    "monkey-face": ("monkey", "face"), "cat-face": ("cat", "face"),
}
# The few Unicode name spellings that read badly as captions.
NAME_FIXES = ((re.compile(r"\boclock\b"), "o'clock"), (re.compile(r"\bmens\b"), "men's"),
              (re.compile(r"\bwomens\b"), "women's"), (re.compile(r"\s&\s"), " and "))
# Names that are code points, not words: "SQUARED CJK UNIFIED IDEOGRAPH-7121".
_CODE_NAME = re.compile(r"\b(?:ideograph|u\+?)-?[0-9a-f]{4,6}\b|\bcjk\b", re.I)
_CODE_WORD = re.compile(r"^(?:u[0-9a-f]{4,6}|[0-9a-f]{4,6}(?:-[0-9a-f]{4,6})+|flag-[a-z]{2}|hfg)$", re.I)
_QUOTES = re.compile(r"[\"“”«»]")
_APOSTROPHES = re.compile(r"[‘’`´]")
_STOPWORDS = frozenset({"a", "an", "the", "of", "with", "and", "in", "on", "for"})
_FILLER_WORDS = frozenset({"sign", "symbol", "emoji"})


class NpmError(RuntimeError):
    """``npm`` is missing, or the registry refused or failed to deliver a package."""


# ----------------------------------------------------------------------------------------------
# npm download


def fetch_npm_package(name: str, version: str, cache_dir: str | os.PathLike) -> Path:
    """Download ``name@version`` with ``npm pack`` and extract it once under ``cache_dir``.

    Parameters
    ----------
    name, version : str
        The npm package and its exact version.
    cache_dir : path-like
        Gets ``<name>-<version>/package/``; a later call finds it there and downloads nothing.

    Returns
    -------
    Path
        The extracted ``package/`` folder.

    Raises
    ------
    NpmError
        When ``npm`` is not installed, or ``npm pack`` fails (unknown package or version,
        registry unreachable); the message carries npm's own error lines.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{name.replace('/', '+').lstrip('@')}-{version}"
    if (target / "package").is_dir():
        return target / "package"
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError(f"npm is not installed: it is needed to download {name}@{version} (Debian: apt-get install npm)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=f".{target.name}-") as tmp_name:
        tmp = Path(tmp_name).resolve()  # npm runs inside tmp: a relative destination would be doubled
        env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
        proc = subprocess.run(
            [npm, "pack", f"{name}@{version}", "--pack-destination", str(tmp), "--silent", "--loglevel=error"],
            cwd=tmp, env=env, capture_output=True, text=True, check=False,
        )
        tarballs = sorted(tmp.glob("*.tgz"))
        if proc.returncode != 0 or len(tarballs) != 1:
            errors = "\n".join(line for line in (proc.stderr + proc.stdout).splitlines() if "nodedir" not in line)
            raise NpmError(f"npm pack {name}@{version} failed (exit {proc.returncode}): {errors.strip()[-2000:]}")
        extracted = tmp / "extracted"
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(extracted, filter="data")
        if not (extracted / "package").is_dir():
            raise NpmError(f"{tarballs[0].name}: no package/ folder in the tarball")
        try:
            os.rename(extracted, target)  # atomic: a reader sees all of package/ or none of it
        except OSError:
            if not (target / "package").is_dir():  # not a concurrent download that won the race
                raise
    log.info("fetched %s@%s into %s", name, version, target)
    return target / "package"


# ----------------------------------------------------------------------------------------------
# Code points and captions


def normalize_hexcode(code: str) -> str:
    """``"1f3f3-fe0f-200d-1f308"`` -> ``"1F3F3-200D-1F308"``: uppercase, no variation selector."""
    parts = [p for p in re.split(r"[-_\s]+", code.strip().upper()) if p and p != VS16]
    return "-".join(parts)


def split_group(hexcode: str) -> str:
    """Split key of an emoji: gender and hair variants of one emoji share a split.

    ``man running``, ``woman running`` and ``person running`` all map to the same key, so none
    of them is trained on while another is tested.
    """
    parts = normalize_hexcode(hexcode).split("-")
    kept = [PERSON_GROUPS.get(p, p) for p in parts if p not in GENDER_SIGNS and p not in HAIR and p != ZWJ]
    return "-".join(kept or parts)


def concept_key(hexcode: str) -> str:
    """The concept an emoji drawing shows: its :func:`split_group` with skin tones removed.

    The same for Google's and OpenMoji's drawing of one emoji and for its gender, hair and skin
    variants (``1F3C3-1F3FD-200D-2640-FE0F`` -> ``1F3C3``). Each flag is its own concept.
    """
    parts = [p for p in normalize_hexcode(hexcode).split("-") if p not in SKIN_TONES]
    return split_group("-".join(parts or normalize_hexcode(hexcode).split("-")))


def heldout_concept(key: str, seed: int = 0, fraction: float = HELDOUT_FRACTION) -> bool:
    """Whether the concept ``key`` (see :func:`concept_key`) is held out of training for OpenMoji.

    A seeded hash of the concept key (a hexcode works too: it is reduced to its concept first),
    independent of the train/val/test hash, so about ``fraction`` of all concepts are held out
    whatever else a build keeps.
    """
    digest = hashlib.sha1(f"heldout:{seed}:{concept_key(key)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def caption_key(text: str) -> str:
    """Comparison key: casefolded letters and digits, spaces and hyphens removed (``wheel chair`` = ``wheelchair``)."""
    return re.sub(r"[\W_]+", "", _QUOTES.sub("", text).casefold())


def _content_words(text: str) -> frozenset[str]:
    return frozenset(w for w in re.findall(r"[^\W_]+", text.casefold()) if w not in _STOPWORDS)


def name_caption(name: str, flag: bool = False) -> str | None:
    """A Unicode emoji name as a short lowercase phrase, or None when the name is a code.

    ``flag``: the name is a country's or region's flag, so ``Germany Flag`` (and ``Navarra``)
    become ``flag of germany`` (``flag of navarra``); without it ``PIRATE FLAG`` stays ``pirate flag``.

    Examples: ``RED APPLE`` -> ``red apple``; ``flag: Germany`` -> ``flag of germany``; ``MAN: RED HAIR`` -> ``man with red hair``; ``MAN: BALD`` -> ``bald man``;
    ``FAMILY: MAN, WOMAN, BOY`` -> ``family of man, woman and boy``; ``KEYCAP: *`` -> ``keycap *``.
    """
    text = re.sub(r"\s+", " ", _APOSTROPHES.sub("'", _QUOTES.sub("", name))).strip().casefold()
    if not text or _CODE_NAME.search(text):
        return None
    for pattern, repl in NAME_FIXES:
        text = pattern.sub(repl, text)
    region = re.fullmatch(r"flag(?::| of) (.+)", text) or (flag and (re.fullmatch(r"(.+) flag", text)))
    if region:
        return f"flag of {region.group(1).strip()}"
    if flag and "flag" not in text.split():
        return f"flag of {text}"
    if ":" in text:
        head, _, tail = (part.strip() for part in text.partition(":"))
        items = [t.strip() for t in tail.split(",") if t.strip()]
        if len(items) == 1 and items[0] == "bald":
            return f"bald {head}"
        if len(items) == 1 and head == "keycap":
            return f"keycap {items[0]}"
        listed = ", ".join(items[:-1]) + f" and {items[-1]}" if len(items) > 1 else (items[0] if items else "")
        if head in ("family", "kiss") and listed:
            return f"{head} of {listed}"
        if head.endswith(" with heart") and listed:  # "couple with heart: woman, man"
            return f"{head}, {listed}"
        return f"{head} with {listed}" if listed else head
    return text


def clean_annotation(text: str, flag: bool = False, alternatives: str = "") -> str | None:
    """An OpenMoji or CLDR annotation as one lowercase caption; codes and ``hfg`` removed.

    ``flag``: a region's flag (see :func:`name_caption`). ``alternatives``: comma-separated
    tags, one of which may spell a garbled annotation right (OpenMoji's ``castile and le\ufffdn``
    has the tag ``castile and leon``).
    """
    text = _APOSTROPHES.sub("'", _QUOTES.sub("", text or ""))
    if "\ufffd" in text:
        text = re.sub(r"\S*\ufffd\S*", lambda m: _respell(m.group(0), alternatives), text)
    words = [w for w in re.split(r"\s+", text.strip()) if w and not _CODE_WORD.match(w.strip(",.;:()"))]
    text = re.sub(r"\s+", " ", " ".join(words)).strip(" -:,;.").casefold()
    if not re.search(r"[^\W\d_]{2,}", text):
        return None
    for pattern, repl in NAME_FIXES:
        text = pattern.sub(repl, text)
    return name_caption(text, flag=flag) if ":" in text or flag else text


def _respell(garbled: str, alternatives: str) -> str:
    """The word of ``alternatives`` that ``garbled`` (with U+FFFD for a lost letter) stands for."""
    pattern = re.compile(re.escape(garbled).replace("\ufffd", "[^\\W\\d_]"), re.I)
    return next((w for w in re.findall(r"[^\s,]+", alternatives) if pattern.fullmatch(w)), garbled.replace("\ufffd", ""))


def clean_keyword(raw: str, hyphens: bool = False) -> str | None:
    """A short name or CLDR keyword as a keyword (``face_with_tears_of_joy`` -> ``face with tears of joy``).

    ``hyphens``: hyphens separate words too (short names: ``man-boy-boy``, ``rainbow-flag``).
    """
    word = _APOSTROPHES.sub("'", _QUOTES.sub("", raw)).strip()
    if _CODE_WORD.match(word):
        return None
    word = re.sub(r"[\s_-]+" if hyphens else r"[\s_]+", " ", word).strip(" -:,;.").casefold()
    if not word or not (re.search(r"[^\W\d_]", word) or word.isdigit()):
        return None  # "+1", "-1"
    if re.fullmatch(r"[a-z]", word):
        return None  # single letters ("a", "b", "m") name no picture
    return word


def keyword_caption(keywords: list[str], exclude: list[str | None], codes: frozenset[str] = frozenset(),
                    hyphenated: int = 0) -> str | None:
    """Distinct keywords, comma-joined, without the ones that only repeat ``exclude`` (the name).

    A keyword is left out when it is an ``exclude`` text, a phrase made only of an ``exclude``
    text's words (``man boy boy`` for ``family of man, boy and boy``), or one of ``codes``
    (region codes such as ``vc``). The first ``hyphenated`` keywords split on hyphens.
    """
    excluded = {caption_key(t) for t in exclude if t}
    excluded_words = [_content_words(t) for t in exclude if t]
    kept: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(keywords):
        word = clean_keyword(raw, hyphens=index < hyphenated)
        if word is None or word in codes or caption_key(word) in excluded or caption_key(word) in seen:
            continue
        words = _content_words(word)
        if len(words) > 1 and any(words <= w for w in excluded_words):
            continue
        seen.add(caption_key(word))
        kept.append(word)
    return ", ".join(kept[:MAX_KEYWORDS]) or None


def region_code(hexcode: str) -> str | None:
    """``1F1FB-1F1E8`` -> ``vc``; ``1F3F4-E0067-E0062-E0065-E006E-E0067-E007F`` -> ``gbeng``; else None."""
    parts = normalize_hexcode(hexcode).split("-")
    if len(parts) == 2 and all("1F1E6" <= p <= "1F1FF" for p in parts):
        return "".join(chr(ord("a") + int(p, 16) - 0x1F1E6) for p in parts)
    if parts[0] == "1F3F4" and len(parts) > 2 and all(p.startswith("E00") for p in parts[1:]):
        return "".join(chr(int(p, 16) - 0xE0000) for p in parts[1:-1]).casefold()
    return None


def subcategory_words(subcategory: str) -> tuple[str, ...]:
    if subcategory in SUBCATEGORY_WORDS:
        return SUBCATEGORY_WORDS[subcategory]
    return tuple(w for w in re.split(r"[-&\s]+", subcategory.casefold()) if w and w != "other")


# ----------------------------------------------------------------------------------------------
# Shared build helpers


@dataclass
class _Item:
    """One emoji while the build runs."""

    id: str
    hexcode: str
    source_image: Path
    captions: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)


class _Captioned(Protocol):
    """What the caption helpers use of an item: an emoji, an icon or a Fluent 3D render."""

    id: str
    captions: list[str]
    sources: list[str]


def _add_captions(item: _Captioned, candidates: list[tuple[str, str | None]], report: DropReport) -> None:
    """Keep candidates whose content words differ from every caption kept before them."""
    seen: list[frozenset[str]] = []
    for name, text in candidates:
        if not text:
            continue
        words = _content_words(text)
        if any(words == s or words - _FILLER_WORDS == s - _FILLER_WORDS for s in seen):
            report.caption(item.id, "duplicate_caption", name, text)
            continue
        seen.append(words)
        item.captions.append(text)
        item.sources.append(name)


def _emojibase(cache_dir: Path) -> dict[str, dict]:
    """CLDR labels and keywords by normalised hexcode (from ``emojibase-data``'s ``en/data.json``)."""
    package = fetch_npm_package(*EMOJIBASE_PACKAGE, cache_dir)
    table: dict[str, dict] = {}
    for row in json.loads((package / "en" / "data.json").read_text(encoding="utf-8")):
        table[normalize_hexcode(row["hexcode"])] = {"label": row.get("label", ""), "tags": row.get("tags") or []}
    return table


def _stats(source: str, n_entries: int, records: list[ManifestRecord], report: DropReport, params: dict,
           seconds: float, out: Path, extra: dict | None = None) -> dict:
    image_bytes = sum((out / "images" / source / f"{r.id}.png").stat().st_size for r in records)
    return {
        "source": source,
        "entries": n_entries,
        **corpus_stats(records, report.counts("image"), report.counts("caption")),
        "groups": dict(Counter(r.meta.get("group") or r.meta.get("category") for r in records).most_common()),
        "image_bytes": image_bytes,
        **(extra or {}),
        "params": params,
        "seconds": round(seconds, 2),
    }


def _finish(out: Path, source: str, records: list[ManifestRecord], report: DropReport, n_entries: int,
            params: dict, started: float, extra: dict | None = None) -> dict:
    """Write ``manifest.jsonl``, ``dropped.jsonl`` and ``stats.json``; remove stale images of ``source``.

    ``extra``: more ``stats.json`` fields (a licence, an attribution), written before ``params``.
    """
    keep = {Path(r.image).name for r in records}
    for stale in sorted((out / "images" / source).glob("*.png")):
        if stale.name not in keep:  # left by an earlier build with another limit
            stale.unlink()
    write_manifest(out / "manifest.jsonl", records)
    write_jsonl(out / "dropped.jsonl", report.rows)
    # seconds vary between runs; manifest.jsonl and dropped.jsonl are byte-identical.
    stats = _stats(source, n_entries, records, report, params, time.perf_counter() - started, out, extra)
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return stats


def _licence(source: str) -> dict:
    licence, attribution = LICENCES[source]
    return {"licence": licence, "attribution": attribution}


def _decodes(path: Path) -> tuple[int, int] | None:
    try:
        return load_image(path).size
    except ImageError:
        return None


# ----------------------------------------------------------------------------------------------
# emoji-datasource sets (Google, Twitter)


def _datasource_entries(package: Path) -> list[dict]:
    entries = json.loads((package / "emoji.json").read_text(encoding="utf-8"))
    return sorted(entries, key=lambda e: (e.get("sort_order", 0), e["unified"]))


def _google_captions(entry: dict, cldr: dict | None) -> tuple[list[tuple[str, str | None]], str | None]:
    """Caption candidates (name, CLDR label, keywords) and the CLDR label, cleaned."""
    name = name_caption(entry["name"], flag=entry.get("subcategory", "").endswith("-flag"))
    label = clean_annotation(cldr["label"]) if cldr else None
    short_names = entry.get("short_names", [])
    keywords = [*short_names, *subcategory_words(entry.get("subcategory", "")), *(cldr["tags"] if cldr else [])]
    code = region_code(entry["unified"])
    codes = frozenset({code} if code else ())
    keywords_text = keyword_caption(keywords, [name, label], codes=codes, hyphenated=len(short_names))
    return [("name", name), ("cldr_label", label), ("keywords", keywords_text)], label


def google_concepts(cache_dir: str | os.PathLike = DEFAULT_CACHE) -> tuple[set[str], set[str]]:
    """Every concept the Google package shows: normalised hexcodes and caption keys.

    Caption keys come from names, CLDR labels and short names of *all* entries (dropped and
    held-out ones too, skin-tone variants included), whatever a Google manifest kept.
    """
    cache_dir = Path(cache_dir)
    package = fetch_npm_package(*GOOGLE_PACKAGE, cache_dir)
    cldr = _emojibase(cache_dir)
    codes: set[str] = set()
    keys: set[str] = set()
    for entry in _datasource_entries(package):
        variants = [entry["unified"], entry.get("non_qualified") or "", *(entry.get("skin_variations") or {})]
        for code in filter(None, variants):
            codes.add(normalize_hexcode(code))
        hexcode = normalize_hexcode(entry["unified"])
        texts = [name_caption(entry["name"], flag=entry.get("subcategory", "").endswith("-flag")), clean_annotation(cldr[hexcode]["label"]) if hexcode in cldr else None]
        texts += [clean_keyword(s, hyphens=True) for s in entry.get("short_names", [])]
        keys |= {caption_key(t) for t in texts if t}
    keys.discard("")
    return codes, keys


def _datasource_items(package: Path, cldr: dict[str, dict], entries: list[dict], report: DropReport,
                  image_set: str = "google") -> list[_Item]:
    """Emoji of ``image_set`` with a decodable, distinct drawing and at least one caption, in
    ``entries`` order; captions as Google names them (the sets share one ``emoji.json``)."""
    img_root = package / "img" / image_set / "64"
    items: list[_Item] = []
    by_sha: dict[str, _Item] = {}
    prefix = "" if image_set == "google" else f"{image_set}-"  # ids stay unique across the sets' manifests
    for entry in entries:
        hexcode = normalize_hexcode(entry["unified"])
        ident = prefix + hexcode.lower()
        if entry.get("category") == "Component" or any(p in SKIN_TONES for p in hexcode.split("-")):
            report.image(ident, "component", name=entry["name"])  # skin-tone swatches, hair parts
            continue
        if all("1F1E6" <= p <= "1F1FF" for p in hexcode.split("-")) and "-" not in hexcode:
            report.image(ident, "regional_indicator", name=entry["name"])
            continue
        image = img_root / entry.get("image", "")
        if not entry.get(f"has_img_{image_set}") or not image.is_file():
            report.image(ident, f"no_{image_set}_image", name=entry["name"])
            continue
        size = _decodes(image)
        if size is None:
            report.image(ident, "unreadable_png", name=entry["name"])
            continue
        sha = hashlib.sha256(image.read_bytes()).hexdigest()
        if sha in by_sha:  # "Norway Flag" = "Svalbard & Jan Mayen Flag": keep the first in sort order
            by_sha[sha].aliases.append(entry["name"])
            report.image(ident, "duplicate_image", name=entry["name"], duplicate_of=by_sha[sha].id)
            continue
        item = _Item(id=ident, hexcode=hexcode, source_image=image)
        candidates, label = _google_captions(entry, cldr.get(hexcode))
        if candidates[0][1] is None:
            report.caption(ident, "name_is_a_code", "name", entry["name"])
        _add_captions(item, candidates, report)
        if not item.captions:
            report.image(ident, "no_captions", name=entry["name"])
            continue
        item.meta = {
            "name": entry["name"], "cldr_label": (cldr.get(hexcode) or {}).get("label"),
            "category": entry.get("category"), "subcategory": entry.get("subcategory"),
            "short_names": entry.get("short_names", []), "sha256": sha, "width": size[0], "height": size[1],
            "skin_variations": len(entry.get("skin_variations") or {}),
        }
        by_sha[sha] = item
        items.append(item)
    return items


def heldout_google_captions(cache_dir: str | os.PathLike = DEFAULT_CACHE, seed: int = 0) -> dict[str, str]:
    """Normalised hexcode -> caption of every Google emoji (whole package) whose concept is held out.

    The caption is the first one the Google builder gives the emoji (its name as a phrase, or its
    CLDR label when the name is a code). These are the only emoji the OpenMoji set may show.
    """
    cache_dir = Path(cache_dir)
    package = fetch_npm_package(*GOOGLE_PACKAGE, cache_dir)
    items = _datasource_items(package, _emojibase(cache_dir), _datasource_entries(package), DropReport())
    return {i.hexcode: i.captions[0] for i in items if heldout_concept(i.hexcode, seed)}


def build_datasource(out: Path, cache_dir: Path, seed: int, limit: int | None, image_set: str = "google",
                     val_fraction: float = 0.05, test_fraction: float = 0.10) -> dict:
    """Training manifest of one ``emoji-datasource-<image_set>`` package (see :func:`build_emoji_manifest`)."""
    started = time.perf_counter()
    package_id = datasource_package(image_set)
    package = fetch_npm_package(*package_id, cache_dir)
    cldr = _emojibase(cache_dir)
    entries = _datasource_entries(package)[:limit]
    report = DropReport()
    items = []
    for item in _datasource_items(package, cldr, entries, report, image_set):
        if heldout_concept(item.hexcode, seed):  # after duplicates: an alias of it goes too
            report.image(item.id, HELDOUT_REASON, name=item.meta["name"], concept=concept_key(item.hexcode))
            continue
        items.append(item)
    _drop_shared_keywords(items, report)
    records = []
    for item in sorted(items, key=lambda i: i.id):
        if not item.captions:
            report.image(item.id, "no_captions", name=item.meta["name"])
            continue
        dest = _copy_image(item.source_image, out, image_set, item.id)
        meta = {"source": image_set, "hexcode": item.hexcode, "caption_sources": item.sources,
                "split_group": split_group(item.hexcode), "concept": concept_key(item.hexcode), **item.meta}
        if item.aliases:
            meta["aliases"] = item.aliases
        split = assign_split(meta["split_group"], seed, val_fraction, test_fraction)
        records.append(ManifestRecord(id=item.id, image=str(dest), captions=item.captions, split=split, meta=meta))
    skin_dropped = sum(len(e.get("skin_variations") or {}) for e in entries)
    params = {"package": "@".join(package_id), "cldr": "@".join(EMOJIBASE_PACKAGE), "seed": seed,
              "limit": limit, "val_fraction": val_fraction, "test_fraction": test_fraction,
              "heldout_fraction": HELDOUT_FRACTION, "skin_tone_variants_not_used": skin_dropped}
    return _finish(out, image_set, records, report, len(entries), params, started, _licence(image_set))


def _drop_shared_keywords(items: Sequence[_Captioned], report: DropReport) -> None:
    """Remove keyword captions that many emoji share (they would make batch false negatives)."""
    counts = Counter(c for i in items for c, s in zip(i.captions, i.sources, strict=True) if s == "keywords")
    for item in items:
        for index, (text, source) in enumerate(zip(item.captions, item.sources, strict=True)):
            if source == "keywords" and counts[text] >= SHARED_KEYWORDS_MIN:
                report.caption(item.id, "shared_keywords", "keywords", text)
                del item.captions[index], item.sources[index]
                break


def _copy_image(source: Path, out: Path, folder: str, ident: str) -> Path:
    dest = out / "images" / folder / f"{ident}.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    if not dest.exists() or dest.read_bytes() != data:
        dest.write_bytes(data)
    return dest


# ----------------------------------------------------------------------------------------------
# OpenMoji


def render_svg(svg: Path, png: Path, size: int = OPENMOJI_SIZE) -> None:
    """Render an SVG to a ``size`` x ``size`` PNG (transparent background) with ``rsvg-convert``."""
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise RuntimeError("rsvg-convert is not installed (Debian: apt-get install librsvg2-bin)")
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_name(png.name + ".tmp")
    subprocess.run([exe, "-w", str(size), "-h", str(size), "-f", "png", "-o", str(tmp), str(svg)],
                   check=True, capture_output=True)
    os.replace(tmp, png)


def build_openmoji(out: Path, cache_dir: Path, seed: int, limit: int | None) -> dict:
    started = time.perf_counter()
    package = fetch_npm_package(*OPENMOJI_PACKAGE, cache_dir)
    heldout = heldout_google_captions(cache_dir, seed)
    entries = sorted(json.loads((package / "data" / "openmoji.json").read_text(encoding="utf-8")),
                     key=lambda e: normalize_hexcode(e["hexcode"]))
    report = DropReport()
    candidates: list[_Item] = []
    seen_sha: dict[str, str] = {}
    seen_caption: dict[str, str] = {}
    for entry in entries:
        hexcode = normalize_hexcode(entry["hexcode"])
        ident = entry["hexcode"].upper()
        parts = hexcode.split("-")
        annotation = entry.get("annotation", "")
        if entry.get("skintone") or any(p in SKIN_TONES for p in parts):
            report.image(ident, "skin_tone_variant", annotation=annotation)
            continue
        if entry.get("group") == "component" or entry.get("subgroups") == "regional-indicator" or hexcode == KEYCAP:
            report.image(ident, "component", annotation=annotation)
            continue
        if str(entry.get("group", "")).startswith("extras-"):
            report.image(ident, "OpenMoji extra: not a Unicode emoji", annotation=annotation)
            continue
        if len(parts) == 1 and int(parts[0], 16) < 0x80:
            report.image(ident, "text_character", annotation=annotation)  # "hyphen-minus"
            continue
        concept = concept_key(hexcode)
        if not heldout_concept(concept, seed):
            report.image(ident, "concept in training source", annotation=annotation, concept=concept)
            continue
        caption = heldout.get(hexcode)
        if caption is None:  # newer than the Google set, or a Google duplicate of another emoji
            report.image(ident, "no Google drawing", annotation=annotation, concept=concept)
            continue
        svg = package / "color" / "svg" / f"{entry['hexcode']}.svg"
        if not svg.is_file():
            report.image(ident, "no_svg", annotation=annotation)
            continue
        sha = hashlib.sha256(svg.read_bytes()).hexdigest()
        if sha in seen_sha:
            report.image(ident, "duplicate_image", annotation=annotation, duplicate_of=seen_sha[sha])
            continue
        if caption_key(caption) in seen_caption:  # one caption, two pictures: an ambiguous query
            report.image(ident, "duplicate_caption", annotation=annotation, duplicate_of=seen_caption[caption_key(caption)])
            continue
        seen_sha[sha] = seen_caption[caption_key(caption)] = ident
        item = _Item(id=ident, hexcode=hexcode, source_image=svg, captions=[caption], sources=["google_name"])
        item.meta = {"concept": concept, "annotation": annotation, "group": entry.get("group"),
                     "subgroup": entry.get("subgroups"), "tags": entry.get("openmoji_tags") or entry.get("tags") or "",
                     "svg_sha256": sha, "author": entry.get("openmoji_author"), "unicode_version": entry.get("unicode")}
        candidates.append(item)
    if limit is not None:
        for item in candidates[limit:]:
            report.image(item.id, "over_limit", annotation=item.meta["annotation"])
        candidates = candidates[:limit]
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        pngs = list(pool.map(lambda i: _render(i, out), candidates))
    records = []
    for item, png in zip(candidates, pngs, strict=True):
        size = _decodes(png) if png is not None else None
        if size is None:
            report.image(item.id, "unrenderable_svg", annotation=item.meta["annotation"])
            continue
        meta = {"source": "openmoji", "hexcode": item.hexcode, "caption_sources": item.sources, **item.meta,
                "width": size[0], "height": size[1]}
        records.append(ManifestRecord(id=item.id, image=str(png), captions=item.captions, split="test", meta=meta))
    records.sort(key=lambda r: r.id)
    params = {"package": "@".join(OPENMOJI_PACKAGE), "captions_from": "@".join(GOOGLE_PACKAGE), "seed": seed,
              "heldout_fraction": HELDOUT_FRACTION, "google_heldout_emoji": len(heldout),
              "size": OPENMOJI_SIZE, "limit": limit, "renderer": "rsvg-convert"}
    stats = _finish(out, "openmoji", records, report, len(entries), params, started, _licence("openmoji"))
    if len(records) < 200 and limit is None:
        log.warning("only %d OpenMoji images remain as a held-out set", len(records))
    return stats


def _render(item: _Item, out: Path) -> Path | None:
    png = out / "images" / "openmoji" / f"{item.id}.png"
    try:
        render_svg(item.source_image, png)
    except subprocess.CalledProcessError as exc:
        log.warning("%s: rsvg-convert failed: %s", item.source_image, exc.stderr)
        return None
    return png


# ----------------------------------------------------------------------------------------------


def build_emoji_manifest(
    out: str | os.PathLike,
    source: str,
    cache_dir: str | os.PathLike = DEFAULT_CACHE,
    seed: int = 0,
    limit: int | None = None,
) -> dict:
    """Build an emoji manifest (``manifest.jsonl``, ``dropped.jsonl``, ``stats.json``, ``images/``).

    Parameters
    ----------
    out : path-like
        Output folder; images are written under ``out/images/<source>/``.
    source : {"google", "twitter", "openmoji"}
        ``google``, ``twitter``: training data without the held-out concepts, split train/val/test by a
        seeded hash of the emoji's variant group. ``openmoji``: held-out test data, OpenMoji's
        drawings of the held-out concepts (:func:`heldout_concept`), captioned as Google names them.
    cache_dir : path-like
        Where the npm packages are downloaded and extracted (once).
    seed : int
        Seed of the held-out concepts (both sources: build them with the same seed) and of the
        Google train/val/test split (every OpenMoji record is ``test``).
    limit : int, optional
        ``google``, ``twitter``: only the first N emoji in the package's sort order. ``openmoji``: render only
        the first N emoji (in hexcode order) that pass the metadata filters.

    Returns
    -------
    dict
        The statistics written to ``stats.json``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
    out, cache_dir = Path(out), Path(cache_dir)
    out.mkdir(parents=True, exist_ok=True)
    if source in DATASOURCE_SETS:
        return build_datasource(out, cache_dir, seed, limit, source)
    return build_openmoji(out, cache_dir, seed, limit)

