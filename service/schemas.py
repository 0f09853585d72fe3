"""Pydantic request and response models of every route."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool


def _unicode_text(value: str) -> str:
    """Refuse text with unpaired surrogates (JSON can carry ``\\ud800``; it is not Unicode text)."""
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            raise ValueError(f"contains an unpaired surrogate (U+{ord(ch):04X}); send valid Unicode text")
    return value


Text = Annotated[str, AfterValidator(_unicode_text)]


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: 'body', 'query' or 'path', then the field")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    detail: str = Field(description="what was wrong, for a person to read")
    request_id: str = Field(description="the request's id (also the X-Request-ID header); the server log has it too")
    errors: list[FieldError] | None = Field(
        None, description="every 422 lists what was invalid, one entry per field (loc [] when no single field is to blame; "
        "the first 20, the detail counts them all)"
    )


class WordWeight(BaseModel):
    word: str
    weight: float


class MatchedWord(BaseModel):
    word: str
    query_weight: float = Field(description="the word's weight in the (edited) query")
    image_weight: float = Field(description="the word's weight in the image, de-quantised")
    contribution: float = Field(description="query impact x image impact, in the index's score units")
    share: float = Field(description="contribution / score")


class SearchHit(BaseModel):
    id: str
    score: float
    image_url: str
    thumb_url: str
    width: int
    height: int
    matches: list[MatchedWord]


class LeftOutWord(BaseModel):
    word: str = Field(description="the word as the query had it (at most 40 characters quoted)")
    reason: str = Field(description="why it gave no weight: past the token budget, no row of the query table, "
                        "unknown to the tokenizer, not a vocabulary word, or an edit of a word not in the vocabulary")


class QueryReport(BaseModel):
    text: str = Field(description="the text that was encoded, inline operators removed")
    words: list[WordWeight] = Field(description="the query map sent to the index, after edits")
    encoded: list[WordWeight] = Field(description="the encoder's words before edits")
    excluded: list[str] = Field(description="words no hit carries (`-word`, exclude)")
    boosted: dict[str, float]
    added: list[str]
    ignored: list[str] = Field(description="edited words that are not in the vocabulary")
    required: list[str] = Field(description="words every hit carries (`+word`, require)")
    not_encoded: list[str] = Field(
        default_factory=list,
        description="words of `text` past the text encoder's token budget (the bundle's max_caption_tokens): "
        "not encoded, so not searched; empty when the whole text was read",
    )
    left_out: list[LeftOutWord] = Field(
        default_factory=list,
        description="every word of the query that gave no weight of its own, with why (at most 50; "
        "`left_out_count` says how many there were)",
    )
    left_out_count: int = Field(0, description="how many words were left out in all")


class Versions(BaseModel):
    bundle: str
    index: str


SearchPath = Literal["exact", "approximate"]
SEARCH_PATH_HELP = ("`exact`: Lucene scores every match; `approximate`: each shard's Seismic structure finds the "
                    "candidates (faster on large indexes, may miss a hit); scores and matched words are exact either way")  # fmt: skip


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    query: QueryReport
    timings_ms: dict[str, float]
    cache: dict[str, str]
    versions: Versions
    path: SearchPath = Field("exact", description="which search found the hits: " + SEARCH_PATH_HELP)


class SearchRequest(BaseModel):
    query: Text = Field(
        description="free text in Lucene's syntax: `+word` a hit must have, `-word` none may have, `word^2` weighs double"
    )
    k: int | None = Field(None, description="number of hits (the service's k range applies)")
    boost: dict[Text, float] = Field(
        default_factory=dict, description="word -> factor, added when absent (the service's word limit applies)"
    )
    exclude: list[Text] = Field(default_factory=list, description="words removed from the query and the hits")
    require: list[Text] = Field(default_factory=list, description="words every hit must carry (as `+word`)")
    path: SearchPath | None = Field(None, description=SEARCH_PATH_HELP + " (default: the service's LEXVLA_SEARCH_PATH)")

    model_config = {"json_schema_extra": {"examples": [{"query": "a red circle -square", "k": 10, "boost": {"red": 2.0}},
                                                       {"query": "+red circle^2 -star"}]}}  # fmt: skip


class SparseValue(BaseModel):
    """One non-zero dimension of a sparse vector, as TEI's ``/embed_sparse`` answers it."""

    index: int = Field(description="the word's dimension: its position in the bundle's vocab.json `words`")
    value: int | float = Field(description="the weight (an integer impact when `quantized`)")


EmbedFormat = Literal["tei", "words"]
EMBED_FORMAT_HELP = "`tei`: a list of `{index, value}` per input (TEI's shape); `words`: a `{word: weight}` map per input"
QUANTIZED_HELP = "integer impacts as the index stores them (weight x the bundle's quant_scale, rounded; zeros dropped)"


class EmbedSparseRequest(BaseModel):
    """Texts to turn into sparse vectors. Other TEI fields (``truncation_direction``, ...) are accepted and ignored."""

    inputs: Text | list[Text] = Field(description="one text or a list (the service's batch limit applies); no query operators")
    format: EmbedFormat = Field("tei", description=EMBED_FORMAT_HELP)
    quantized: StrictBool = Field(False, description=QUANTIZED_HELP)
    truncate: StrictBool = Field(
        False, description="encode the first tokens of a text longer than the text encoder reads (the bundle's "
        "max_caption_tokens) and drop the rest, as TEI does; false: such a text is a 422 naming the words left over",
    )

    model_config = {"json_schema_extra": {"examples": [
        {"inputs": ["a red circle", "a blue star"]},
        {"inputs": "a red circle", "format": "words", "quantized": True},
    ]}}  # fmt: skip


class EmbedImageOptions(BaseModel):
    """The form fields of ``/embed_sparse/images`` next to the ``file`` parts."""

    format: EmbedFormat = Field("tei", description=EMBED_FORMAT_HELP)
    quantized: bool = Field(False, description=QUANTIZED_HELP)


TEI_EXAMPLE = [[{"index": 2210, "value": 0.71}, {"index": 3716, "value": 0.52}], [{"index": 1221, "value": 0.66}]]
WORDS_EXAMPLE = [{"red": 0.71, "circle": 0.52}, {"star": 0.66}]
EmbedSparseResponse = list[list[SparseValue]] | list[dict[str, int | float]]


class ImageOptions(BaseModel):
    """Options of ``/encode`` and ``/search/image`` (JSON fields, or form fields next to the file)."""

    heatmaps: list[Text] = Field(
        default_factory=list, description="words to draw heatmaps for (with heatmap_top_n, the service's heatmap limit applies)"
    )
    heatmap_top_n: int = Field(0, ge=0, le=32, description="also draw heatmaps for the top-N words")
    heatmap_format: Literal["png", "array"] = "png"
    top_n: int = Field(64, ge=1, le=4096, description="words returned")
    k: int | None = None
    exclude: list[Text] = Field(default_factory=list)
    exclude_id: Text | None = Field(None, description="a doc id to leave out of image-to-image results")


class ImageJSONRequest(ImageOptions):
    image_base64: str = Field(description="the image file, base64 (a data: URL prefix is accepted)")


class Heatmap(BaseModel):
    word: str
    in_vocabulary: bool
    peak: float = 0.0
    png: str | None = Field(None, description="PNG data URL of the overlay")
    grid: list[list[float]] | None = Field(None, description="raw activation on the patch grid [gh][gw]")


class EncodeResponse(BaseModel):
    words: list[WordWeight]
    bundle_version: str
    patch_grid: tuple[int, int]
    width: int
    height: int
    heatmaps: list[Heatmap]
    timings_ms: dict[str, float]


class ImageSearchResponse(BaseModel):
    hits: list[SearchHit]
    words: list[WordWeight]
    timings_ms: dict[str, float]
    versions: Versions


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    bundle_version: str | None
    index_version: str | None
    index_bundle_version: str | None
    doc_count: int | None
    providers: dict[str, list[str]]
    cache: bool
    detail: str | None = None


class ReloadResponse(BaseModel):
    switched: bool
    index_version: str
    detail: str
