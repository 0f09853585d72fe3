"""A model bundle: the directory the indexer and the service load, and nothing else.

Layout::

    bundle.json          BundleConfig: towers' input specs, top-k, quantisation scale, version
    image_encoder.onnx   pixels [B,3,S,S] -> lexical [B,V], patch_lexical [B,P,V]
    text_encoder.onnx    input_ids, attention_mask [B,L] -> lexical [B,V]
    tokenizer.json       the text tower's tokenizer (``tokenizers`` format)
    vocab.json           lexical dimension -> word (see ``models.vocab``)

Optional and derived (not part of the version): ``text_encoder.int8.onnx`` (``quantize_text_encoder``),
``query_table.npz`` (``models.query_table.build_query_table``: inference-free queries) and ``README.md``,
the model card (``models.model_card``: training data, licences and attributions, metrics).

``version`` is a content hash of every other file plus the config, so an index built with one
bundle can refuse to be searched with another. This module needs numpy, onnxruntime and
tokenizers only -- no torch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from models.preprocess import ImageSpec, TextPreprocessor
from models.query_table import QUERY_TABLE_FILE, QueryTable, QueryTableError
from models.runtime import create_session
from models.sparse import SparseVector, quantize, sparsify
from models.vocab import Vocabulary

BUNDLE_FORMAT = 1
CONFIG_FILE = "bundle.json"
FILES = {
    "image_encoder": "image_encoder.onnx",
    "text_encoder": "text_encoder.onnx",
    "tokenizer": "tokenizer.json",
    "vocab": "vocab.json",
}
# Optional, derived from text_encoder.onnx by quantize_text_encoder and not part of the version (the
# index holds image vectors only): the text tower with int8 weights, for faster query encoding.
TEXT_INT8_FILE = "text_encoder.int8.onnx"
TEXT_PRECISIONS = ("fp32", "int8")
MODEL_CARD_FILE = "README.md"  # models.model_card writes it
# How a query becomes a vector: the text tower's ONNX model, or per-word rows of its output looked up
# in QUERY_TABLE_FILE (models.query_table: no ONNX call, no text session).
QUERY_MODES = ("encoder", "table")


class BundleError(RuntimeError):
    """A bundle that is missing, incomplete or altered."""


@dataclass
class BundleConfig:
    name: str
    card: str
    image_size: int
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    patch_grid: tuple[int, int]
    image_top_k: int
    text_prompt: str
    text_max_caption_tokens: int
    text_lowercase: bool
    text_top_k: int
    quant_scale: float
    vocab_size: int
    format: int = BUNDLE_FORMAT
    version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BundleConfig:
        doc = json.loads(text)
        doc["image_mean"], doc["image_std"] = tuple(doc["image_mean"]), tuple(doc["image_std"])
        doc["patch_grid"] = tuple(doc["patch_grid"])
        return cls(**doc)


def content_hash(path: Path, config: BundleConfig) -> str:
    """sha256 over the bundle's files and its config (without the version field), 16 hex digits."""
    digest = hashlib.sha256()
    cfg = asdict(config) | {"version": ""}
    digest.update(json.dumps(cfg, sort_keys=True).encode())
    for key in sorted(FILES):
        digest.update(key.encode())
        with open(path / FILES[key], "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def quantize_text_encoder(path: str | Path) -> Path:
    """Write ``TEXT_INT8_FILE`` into a bundle: the text tower with dynamic int8 quantisation.

    onnxruntime's ``quantize_dynamic``: MatMul/Gemm weights stored as int8, activations quantised on
    the fly per call. The file records the sha256 of the text encoder it was made from. Needs the
    ``onnx`` package (the ``train`` extra); serving it does not.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = Path(path)
    source, out = path / FILES["text_encoder"], path / TEXT_INT8_FILE
    tmp = out.with_suffix(".tmp.onnx")
    quantize_dynamic(source, tmp, weight_type=QuantType.QInt8)
    model = onnx.load(str(tmp))
    onnx.helper.set_model_props(model, {"source_sha256": file_sha256(source)})
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out


def seal(path: Path, config: BundleConfig) -> BundleConfig:
    """Write ``bundle.json`` with the content-hash version; returns the sealed config."""
    missing = [name for name in FILES.values() if not (path / name).is_file()]
    if missing:
        raise BundleError(f"{path}: cannot seal, missing {missing}")
    config.version = content_hash(path, config)
    (path / CONFIG_FILE).write_text(config.to_json())
    return config


class Bundle:
    """An exported LexVLA model, encoding images and texts with onnxruntime.

    Parameters
    ----------
    path : bundle directory.
    device : ``"auto"`` (CUDA provider when present), ``"cpu"`` or ``"cuda"``.
    verify : recompute the content hash and refuse a bundle whose files changed.
    spinning : let onnxruntime's intra-op threads busy-wait after a run (its default; best for
        back-to-back batches). A server that does other work between runs (Lucene, HTTP) wants
        ``False``: on a 2-core machine the spinning threads delay the next step by ~2 ms.
    text_precision : ``"fp32"`` or ``"int8"``: encode texts with ``TEXT_INT8_FILE`` (made by
        :func:`quantize_text_encoder`; refused when missing or derived from another text encoder).
    query_mode : ``"encoder"`` (the text tower's ONNX model) or ``"table"``: queries from the
        tokenizer and ``QUERY_TABLE_FILE`` (``models.query_table``), with no text ONNX session at
        all; refused when the table is missing or was made from another bundle. fp32 only (the
        table is made from the fp32 tower).
    """

    def __init__(self, path: str | Path, device: str = "auto", verify: bool = True, threads: int = 0,
                 spinning: bool = True, text_precision: str = "fp32", query_mode: str = "encoder"):  # fmt: skip
        self.path = Path(path)
        cfg_file = self.path / CONFIG_FILE
        if not cfg_file.is_file():
            raise BundleError(f"no model bundle at {self.path} (missing {CONFIG_FILE}); build one with `lexvla export`")
        self.config = BundleConfig.from_json(cfg_file.read_text())
        if self.config.format != BUNDLE_FORMAT:
            raise BundleError(f"{self.path}: bundle format {self.config.format}, this code reads {BUNDLE_FORMAT}")
        missing = [name for name in FILES.values() if not (self.path / name).is_file()]
        if missing:
            raise BundleError(f"{self.path}: incomplete bundle, missing {missing}")
        if verify and content_hash(self.path, self.config) != self.config.version:
            raise BundleError(f"{self.path}: files do not match version {self.config.version}; re-export it")
        self.device, self.threads, self.spinning = device, threads, spinning
        if text_precision not in TEXT_PRECISIONS:
            raise BundleError(f"text_precision must be one of {TEXT_PRECISIONS}, not {text_precision!r}")
        self.text_precision = text_precision
        if query_mode not in QUERY_MODES:
            raise BundleError(f"query_mode must be one of {QUERY_MODES}, not {query_mode!r}")
        if query_mode == "table" and text_precision != "fp32":
            raise BundleError(f"query_mode=table encodes no text with the text tower: text_precision must be fp32, "
                              f"not {text_precision}")  # fmt: skip
        self.query_mode = query_mode
        if text_precision == "int8" and not (self.path / TEXT_INT8_FILE).is_file():
            raise BundleError(f"{self.path}: no {TEXT_INT8_FILE} for text_precision=int8; make it with "
                              f"`lexvla quantize-text --bundle {self.path}`")  # fmt: skip
        self.vocab = Vocabulary.load(self.path / FILES["vocab"])
        if len(self.vocab) != self.config.vocab_size:
            raise BundleError(f"{self.path}: vocab.json has {len(self.vocab)} words, config says {self.config.vocab_size}")
        self.image_spec = ImageSpec(self.config.image_size, self.config.image_mean, self.config.image_std)
        from tokenizers import Tokenizer

        self.text_preprocessor = TextPreprocessor(
            Tokenizer.from_file(str(self.path / FILES["tokenizer"])),
            prompt=self.config.text_prompt,
            max_caption_tokens=self.config.text_max_caption_tokens,
            lowercase=self.config.text_lowercase,
        )
        self._image_session = None
        self._text_session = None
        self._text_outputs: list[str] = []
        self._table_digest = ""
        self.query_table = self._load_query_table(verify) if query_mode == "table" else None

    def _load_query_table(self, verified: bool) -> QueryTable:
        path = self.path / QUERY_TABLE_FILE
        if not path.is_file():
            raise BundleError(f"{self.path}: no {QUERY_TABLE_FILE} for query_mode=table; make it with "
                              f"`lexvla query-table --bundle {self.path}`")  # fmt: skip
        try:
            table = QueryTable.load(path)
        except QueryTableError as exc:
            raise BundleError(str(exc)) from exc
        self._table_digest = file_sha256(path)[:12]  # a rebuilt table (more rows, another combine) answers differently
        # verified: the files hash to the version; unverified, the text encoder itself is compared
        stale = (table.bundle_version != self.version or table.vocab_size != len(self.vocab)
                 or (not verified and table.meta.get("text_encoder_sha256") != file_sha256(self.path / FILES["text_encoder"])))  # fmt: skip
        if stale:
            raise BundleError(f"{self.path}: {QUERY_TABLE_FILE} was made from another bundle ({table.bundle_version}); "
                              "run `lexvla query-table` again")  # fmt: skip
        return table

    @property
    def version(self) -> str:
        return self.config.version

    @property
    def text_encoder_id(self) -> str:
        """The version of what encodes texts: ``version``, plus ``+int8`` for the int8 text tower or
        ``+table-<digest of the table file>`` for the query table (what caches of encoded queries and
        of results key on: a rebuilt table never answers from the old one's entries)."""
        if self.query_mode == "table":
            return f"{self.version}+table-{self._table_digest}"
        return self.version if self.text_precision == "fp32" else f"{self.version}+{self.text_precision}"

    @property
    def words(self) -> list[str]:
        return self.vocab.words

    @property
    def image_session(self):
        if self._image_session is None:
            self._image_session = create_session(self.path / FILES["image_encoder"], self.device, self.threads, self.spinning)
        return self._image_session

    @property
    def text_session(self):
        if self.query_mode == "table":
            raise BundleError("query_mode=table encodes texts without the text tower: there is no text session")
        if self._text_session is None:
            name = FILES["text_encoder"] if self.text_precision == "fp32" else TEXT_INT8_FILE
            session = create_session(self.path / name, self.device, self.threads, self.spinning)
            if name == TEXT_INT8_FILE:  # cheap next to loading it; a stale file would answer silently wrong
                made_from = session.get_modelmeta().custom_metadata_map.get("source_sha256")
                if made_from != file_sha256(self.path / FILES["text_encoder"]):
                    raise BundleError(f"{self.path}: {TEXT_INT8_FILE} was made from another text encoder; "
                                      "run `lexvla quantize-text` again")  # fmt: skip
            # "lexical", and "typed" when the tower has a floor (``encode_texts_typed``)
            self._text_outputs = [o.name for o in session.get_outputs()]
            self._text_session = session
        return self._text_session

    @property
    def providers(self) -> dict[str, list[str]]:
        """onnxruntime's execution providers per tower; ``["query_table"]`` for texts in table mode."""
        text = ["query_table"] if self.query_mode == "table" else self.text_session.get_providers()
        return {"image": self.image_session.get_providers(), "text": text}

    def warm(self) -> Bundle:
        """Create what encoding needs before the first request: the image session, and the text
        session in encoder mode (table mode has its table loaded already and makes no text session)."""
        self.image_session  # noqa: B018 -- creating it is the point
        if self.query_mode == "encoder":
            self.text_session  # noqa: B018
        return self

    # ---- dense encoders -------------------------------------------------------------------
    def encode_pixels(self, pixels: np.ndarray, patches: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Preprocessed pixels ``[B,3,S,S]`` -> lexical ``[B,V]`` (and per-patch ``[B,P,V]``)."""
        outputs = ["lexical", "patch_lexical"] if patches else ["lexical"]
        result = self.image_session.run(outputs, {"pixel_values": pixels.astype(np.float32)})
        return result[0], (result[1] if patches else None)

    def encode_images_dense(self, images: list[Image.Image], patches: bool = False):
        return self.encode_pixels(self.image_spec.batch(images), patches=patches)

    def encode_texts_dense(self, texts: list[str]) -> np.ndarray:
        """Captions -> lexical ``[B,V]``. Raises ``InputError`` for an empty caption."""
        return self.encode_texts_typed(texts)[0]

    def encode_texts_typed(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Captions -> lexical ``[B,V]`` and, when the text tower has a floor (``text.exact_floor``),
        the mask ``[B,V]`` of each caption's own words, which top-k keeps whatever their rank.
        In table mode both come from ``query_table`` (no ONNX call)."""
        if self.query_table is not None:
            return self.query_table.encode(self.text_preprocessor, texts)
        ids, mask = self.text_preprocessor.batch(texts)
        session = self.text_session  # sets _text_outputs
        result = session.run(self._text_outputs, {"input_ids": ids, "attention_mask": mask})
        return result[0], (result[1] if len(result) > 1 else None)

    # ---- sparse encoders: what the index and the service use ------------------------------
    def encode_images(self, images: list[Image.Image], top_k: int | None = None) -> list[SparseVector]:
        return self.image_vectors(self.encode_images_dense(images)[0], top_k=top_k)

    def image_vectors(self, dense: np.ndarray, top_k: int | None = None) -> list[SparseVector]:
        """Image lexical ``[B,V]`` -> sparse image vectors: the ``top_k`` strongest words (default
        ``image_top_k``). The one place where an image's words are cut to the index's top-k."""
        return sparsify(dense, self.config.image_top_k if top_k is None else top_k)

    def encode_texts(self, texts: list[str], top_k: int | None = None, min_share: float = 0.0) -> list[SparseVector]:
        return self.text_vectors(*self.encode_texts_typed(texts), top_k=top_k, min_share=min_share)

    def text_vectors(self, dense: np.ndarray, typed: np.ndarray | None, top_k: int | None = None,
                     min_share: float = 0.0) -> list[SparseVector]:  # fmt: skip
        """``encode_texts_typed``'s output -> sparse text vectors: the ``top_k`` strongest words
        (default ``text_top_k``) and every typed word; with ``min_share``, the expansion words (not
        typed) under that share of the text's strongest weight are cut first (docs/query-cuts.md)."""
        return sparsify(dense, self.config.text_top_k if top_k is None else top_k, keep=typed, min_share=min_share)

    def unknown_words(self, text: str) -> list[str]:
        """The words of ``text`` that get no weight because the query table has no row for them
        (``models.query_table.QueryTable.unknown_words``); always empty in encoder mode, which reads every token."""
        return [] if self.query_table is None else self.query_table.unknown_words(self.text_preprocessor, text)

    def impacts(self, vec: SparseVector) -> dict[str, int]:
        """``{word: integer impact}`` with the bundle's quantisation scale (what Lucene stores)."""
        return {self.vocab.words[i]: v for i, v in quantize(vec, self.config.quant_scale).items()}

    def word_heatmaps(self, patch_lexical: np.ndarray, word_ids: list[int]) -> np.ndarray:
        """Per-patch activation of ``word_ids`` on the patch grid: ``[len(word_ids), gh, gw]``.

        ``patch_lexical`` is one image's ``[P, V]`` output.
        """
        gh, gw = self.config.patch_grid
        return patch_lexical[:, word_ids].T.reshape(len(word_ids), gh, gw)
