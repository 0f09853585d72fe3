"""Training LexVLA from a manifest: contrastive loss plus the overuse (or FLOPs) regulariser.

Frozen parts are run once and cached (``models.features``); a step trains the image adapter,
mapper and visual codebook, the text mapper, LoRA weights when the card enables them, and the
temperature. Checkpoints hold only trainable tensors, the optimiser and the step, so a killed
run resumes where it stopped.
"""
from __future__ import annotations

import io
import json
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from models.data.manifest import ManifestRecord, read_manifest
from models.features import image_colours, image_features, text_hidden_groups
from models.files import DiskFullError, is_disk_full, save_atomically
from models.losses import REGULARIZERS, caption_word_loss, info_nce, regularizer_weight
from models.model import LexVLA, caption_word_dims, load_lexicon
from models.registry import load_card
from models.towers import caption_mask

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.pt"


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored beside its outputs."""

    card: str
    manifests: list[str]
    out_dir: str
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    codebook_lr: float = 1e-4
    weight_decay: float = 0.01
    regularizer: str = "overuse"  # overuse | flops | none
    reg_weight_image: float = 1e-3
    reg_weight_text: float = 1e-3
    reg_warmup_steps: int = 100
    word_loss_weight: float = 0.0  # image -> caption words cross-entropy (``losses.caption_word_loss``)
    # After training: no image word may be among the 10 strongest words of more than this share of
    # the training images (``fit_word_scale``); 0 leaves the weights as trained.
    max_word_rate: float = 0.05
    # ... counting only the images whose captions lack the word.
    word_rate_from_captions: bool = True
    # The ceiling holds in each training manifest on its own, not only over all of them together.
    word_rate_per_source: bool = True
    # After training: the learned image words fade out on pictures unlike the training images
    # (``fit_familiarity``): this many centroids of their pooled features (0: off), and the quantiles
    # of the training images' own familiarity at which the learned part is fully off and fully on.
    familiarity_prototypes: int = 0
    familiarity_quantiles: tuple[float, float] = (0.0, 0.1)
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0  # clip: a spiking penalty must not throw the heads off
    seed: int = 0
    # bf16 autocast: on CUDA, and on a CPU whose oneDNN has bf16 kernels (AVX512-BF16, AMX), where the
    # image head's matmuls -- three quarters of a step of the default -- take half the time
    # (bench/train_step.py); another CPU trains in float32.
    amp: bool = True
    device: str = "auto"
    checkpoint_every: int = 50
    max_steps: int | None = None
    max_minutes: float | None = None
    cache_dir: str | None = None
    train_split: str = "train"
    vision_path: str | None = None
    text_path: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path, **overrides) -> TrainConfig:
        doc = json.loads(Path(path).read_text()) | {k: v for k, v in overrides.items() if v is not None}
        return cls(**doc)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_bf16() -> bool:
    """Whether this CPU runs bfloat16 matmuls natively (oneDNN's own check)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _floats(features: np.ndarray, device: torch.device) -> torch.Tensor:
    """Cached float16 features as a float32 tensor in torch's own (64-byte aligned) memory.

    ``torch.from_numpy`` would keep numpy's buffer, placed wherever the process's earlier
    allocations left room. With it, a first training (features just computed) and a retrain
    (features read from the cache) learned different weights from bit-equal features; with this
    copy they learn the same, and a retrain the same as before.
    """
    return torch.from_numpy(np.ascontiguousarray(features)).to(device=device, dtype=torch.float32)


HEAD_DIMS = "image.head_dims"  # saved beside the trainable tensors: which words the heads write
WORD_SCALE = "image.word_scale"  # and the word-rate calibration fitted after training
FITTED = (HEAD_DIMS, WORD_SCALE, "image.prototypes", "image.familiar_range")  # buffers a weights file carries
TOP_WORDS = 10  # the words a person sees first: an image's strongest ten


def trainable_state(model: LexVLA) -> dict[str, torch.Tensor]:
    state = {name: p.detach().cpu() for name, p in model.named_parameters() if p.requires_grad}
    buffers = dict(model.named_buffers())
    return state | {name: buffers[name].detach().cpu() for name in FITTED}


def load_trainable(model: LexVLA, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    if HEAD_DIMS in state and not torch.equal(state[HEAD_DIMS], model.image.head_dims.cpu()):
        raise KeyError("weights do not fit this model: they were trained for other head words")
    if WORD_SCALE in state:  # weights from before the calibration existed keep a scale of 1
        model.image.word_scale.copy_(state[WORD_SCALE])
    if "image.prototypes" in state:  # weights from before the familiarity existed keep the learned part on
        model.image.prototypes = state["image.prototypes"].to(model.image.prototypes)
        model.image.familiar_range.copy_(state["image.familiar_range"])
    state = {k: v for k, v in state.items() if k not in FITTED}
    unknown = sorted(set(state) - set(params))
    if unknown:
        raise KeyError(f"weights do not fit this card: unknown tensors {unknown[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def build_model(cfg: TrainConfig, captions: list[str]) -> LexVLA:
    """The model to train; with ``head_vocab: "training"`` its heads write the training captions' words."""
    card = load_card(cfg.card, vision_path=cfg.vision_path, text_path=cfg.text_path)
    if card.vision.head_vocab != "training":
        return LexVLA(card, seed=cfg.seed)
    tokenizer, _, vocab, preprocessor = load_lexicon(card)  # the head's words before the model: built once
    dims = caption_word_dims(vocab, tokenizer, preprocessor, captions, card.vision.head_min_count)
    log.info("%d words appear in at least %d training captions", len(dims), card.vision.head_min_count)
    return LexVLA(card, head_dims=dims, seed=cfg.seed)


def load_trained(card: str, weights: str | Path | None, vision_path=None, text_path=None) -> LexVLA:
    """A model from its card, with trained weights from ``weights.pt`` (or untrained when ``None``)."""
    state = torch.load(weights, map_location="cpu", weights_only=True) if weights else None
    head_dims = state[HEAD_DIMS].tolist() if state and HEAD_DIMS in state else None
    model = LexVLA(load_card(card, vision_path=vision_path, text_path=text_path), head_dims=head_dims)
    if state:
        load_trainable(model, state)
    return model.eval()


@torch.no_grad()
def fit_word_scale(weights: torch.Tensor, max_rate: float, top: int = TOP_WORDS, rounds: int = 20,
                   captioned: torch.Tensor | None = None, sources: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """Per-word factors ``[D]`` (each <= 1) under which no word is among the ``top`` strongest words
    of more than ``max_rate`` of the rows of ``weights [N, D]`` (image vectors of the training set).

    ``captioned [N, D]``: 1 where a row's captions use the word. Such a row does not count against
    the word: "red" among the strongest words of every red shape is true, however many there are.
    Only the images a word is wrong about count, the same rule as the report's overuse target.

    ``sources [N]``: each row's source (its training manifest). The ceiling then holds in every
    source on its own: a word that fills one collection's images ("di" on an eighth of the
    drawings) is not excused because other collections dilute it. A source with fewer than
    ``1 / max_rate`` images sets no ceiling.

    The overuse penalty discourages a word that is strong in many images; this enforces a ceiling
    on the rate a person sees. Each round divides every word over the ceiling by how far over it
    is in its worst source (iterative proportional fitting); the words it displaces then move up,
    so a few rounds are needed. A word keeps its weight in every image, only lowered: retrieval
    still uses it.
    """
    n, dims = weights.shape
    sources = torch.zeros(n, dtype=torch.long) if sources is None else sources.long()
    n_sources = int(sources.max()) + 1
    size = torch.bincount(sources, minlength=n_sources).to(weights.dtype)  # [S]
    ceiling = torch.where(size * max_rate >= 1, size * max_rate, torch.inf)[:, None]  # [S, 1] images; inf: too small a source
    scale = torch.ones(dims, dtype=weights.dtype)
    k = min(top, dims)
    for _ in range(rounds):
        values, idx = (weights * scale).topk(k, dim=1)
        wrong = values > 0
        if captioned is not None:
            wrong &= captioned.gather(1, idx) == 0
        cell = (sources[:, None] * dims + idx)[wrong]  # (source, word) of every top-k hit its captions lack
        count = torch.bincount(cell, minlength=n_sources * dims).view(n_sources, dims).to(weights.dtype)
        over = (count / ceiling).amax(dim=0)  # [D]: how far over its ceiling, in its worst source
        if not (over > 1).any():
            break
        scale[over > 1] /= over[over > 1]
    return scale


@torch.no_grad()
def fit_familiarity(pooled: torch.Tensor, k: int, quantiles: tuple[float, float], seed: int = 0,
                    iterations: int = 25) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prototypes [k, d], familiar_range [2])`` from the training images' pooled features ``[N, d]``.

    Spherical k-means gives ``k`` unit centroids; an image's familiarity is its cosine to the
    nearest one. The learned part is fully on from the ``quantiles[1]`` quantile of the training
    images' own familiarity and fully off at ``quantiles[0]`` (the least familiar training image
    for 0.0), so nearly every training-like picture keeps it and a picture further from every
    centroid than any training image says its prior's words only.
    """
    x = torch.nn.functional.normalize(pooled.float(), dim=-1)
    k = min(k, len(x))
    generator = torch.Generator().manual_seed(seed)
    centroids = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    for _ in range(iterations):
        assign = (x @ centroids.t()).argmax(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        empty = torch.bincount(assign, minlength=k) == 0
        sums[empty] = centroids[empty]  # a centroid that lost every image stays where it was
        centroids = torch.nn.functional.normalize(sums, dim=-1)
    nearest = (x @ centroids.t()).amax(dim=1)
    low, high = torch.quantile(nearest, torch.tensor(quantiles, dtype=nearest.dtype))
    return centroids, torch.stack([torch.minimum(low, high - 1e-3), high])


class PairSampler:
    """Epochs over images; each time an image is drawn, one of its captions is picked at random."""

    def __init__(self, records: list[ManifestRecord], batch_size: int, seed: int):
        self.caption_index: list[list[int]] = []  # image -> its captions
        self.caption_image: list[int] = []  # caption -> its image
        self.captions: list[str] = []
        for n, rec in enumerate(records):
            start = len(self.captions)
            self.captions.extend(rec.captions)
            self.caption_index.append(list(range(start, len(self.captions))))
            self.caption_image += [n] * len(rec.captions)
        self.batch_size, self.rng = batch_size, random.Random(seed)

    def batches_per_epoch(self) -> int:
        return max(1, len(self.caption_index) // self.batch_size)

    def epoch(self):
        order = list(range(len(self.caption_index)))
        self.rng.shuffle(order)
        for b in range(self.batches_per_epoch()):
            images = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield images, [self.rng.choice(self.caption_index[i]) for i in images]


class Trainer:
    def __init__(self, cfg: TrainConfig, model: LexVLA | None = None):
        self.cfg = cfg
        seed_everything(cfg.seed)
        self.device = resolve_device(cfg.device)
        per_manifest = [read_manifest(m, split=cfg.train_split) for m in cfg.manifests]
        records = [r for recs in per_manifest for r in recs]
        sources = [k for k, recs in enumerate(per_manifest) for _ in recs]  # each record's manifest
        if not records:
            raise ValueError(f"no '{cfg.train_split}' records in {cfg.manifests}")
        self.model = (model or build_model(cfg, [c for r in records for c in r.captions])).to(self.device)
        self.out = Path(cfg.out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        cache = Path(cfg.cache_dir) if cfg.cache_dir else None
        # One feature cache per manifest: changing one data source leaves the others' features cached.
        parts = [image_features(self.model, [r.image for r in recs], cache, device=str(self.device)) for recs in per_manifest if recs]
        feats = np.concatenate([np.asarray(f) for f, _ in parts])
        # colour shares read from the pixels (models.colours), cached like the features; [N, 0] without colour words
        colours = np.concatenate([image_colours(self.model, [r.image for r in recs], cache) for recs in per_manifest if recs])
        failed = [e for _, errs in parts for e in errs]
        bad = {err.source for err in failed}
        self.image_colours = colours[[i for i, r in enumerate(records) if r.image not in bad]] if bad else colours
        records, self.image_feats, self.image_source = self._without_failed(records, feats, sources, failed)
        self.sampler = PairSampler(records, min(cfg.batch_size, len(records)), cfg.seed)
        # A frozen LM gives the same hidden states every epoch: cache them too.
        self.text_cache = None if self.model.lm_trainable else text_hidden_groups(
            self.model, self._captions_by_source(), cache, device=str(self.device))
        self.regularizer = REGULARIZERS[cfg.regularizer]
        if cfg.word_loss_weight and self.model.text.exact is None:
            raise ValueError("word_loss_weight needs a card with text.exact_match: the caption words are its targets")
        self.optimizer = self._optimizer()
        self.autocast = self.cfg.amp and (self.device.type == "cuda" or (self.device.type == "cpu" and cpu_bf16()))
        self.step = 0
        self.saved_step: int | None = None  # the step of the last checkpoint written or resumed from
        self.log_path = self.out / "train_log.jsonl"

    def _captions_by_source(self) -> list[list[str]]:
        """The sampler's captions in order, cut where one training manifest's records end and the next one's begin."""
        groups: list[list[str]] = []
        last = None
        for image, source in enumerate(self.image_source):
            if source != last:
                groups.append([])
                last = source
            groups[-1] += [self.sampler.captions[c] for c in self.sampler.caption_index[image]]
        return groups

    def _without_failed(self, records: list[ManifestRecord], feats: np.ndarray, sources: list[int],
                        failed: list) -> tuple[list, np.ndarray, list[int]]:  # fmt: skip
        """Leave out images that could not be read, writing them to ``rejects.jsonl`` in the run folder."""
        if not failed:
            return records, feats, sources
        bad = {err.source for err in failed}
        with (self.out / "rejects.jsonl").open("w") as fh:
            for err in failed:
                fh.write(json.dumps({"path": err.source, "reason": err.reason}) + "\n")
        keep = [i for i, r in enumerate(records) if r.image not in bad]
        log.warning("%d of %d training images left out (see %s)", len(records) - len(keep), len(records), self.out / "rejects.jsonl")
        return [records[i] for i in keep], np.asarray(feats[keep]), [sources[i] for i in keep]

    def _optimizer(self) -> torch.optim.Optimizer:
        codebook = [p for n, p in self.model.named_parameters() if p.requires_grad and n.endswith("codebook")]
        rest = [p for n, p in self.model.named_parameters() if p.requires_grad and not n.endswith("codebook")]
        return torch.optim.AdamW(
            [{"params": rest, "lr": self.cfg.lr}, {"params": codebook, "lr": self.cfg.codebook_lr}],
            weight_decay=self.cfg.weight_decay,
        )

    def total_steps(self) -> int:
        steps = self.cfg.epochs * self.sampler.batches_per_epoch() // self.cfg.grad_accum
        return min(steps, self.cfg.max_steps) if self.cfg.max_steps else steps

    def text_vectors(self, caption_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Caption vectors ``[B,V]`` and the token ids and attention mask they came from."""
        if self.text_cache is None:
            ids, mask = self.model.text_inputs([self.sampler.captions[i] for i in caption_ids], self.device)
            return self.model.text(ids, mask), ids, mask
        hidden, masks, token_ids = self.text_cache
        mask_b = torch.from_numpy(masks[caption_ids]).to(self.device)
        width = int(mask_b.sum(1).max())
        h = _floats(hidden[caption_ids, :width], self.device)
        ids = torch.from_numpy(token_ids[caption_ids][:, :width]).to(self.device)
        return self.model.text.from_hidden(h, mask_b[:, :width], ids), ids, mask_b[:, :width]

    def word_loss(self, img: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``caption_word_loss`` over the words the image head can write."""
        text = self.model.text
        assert text.exact is not None  # __init__ refuses word_loss_weight without the exact-match path
        words = text.exact.caption_words(ids, caption_mask(mask, text.skip_head, text.skip_tail))
        dims = self.model.image.head_dims
        return caption_word_loss(img[:, dims], words[:, dims])

    def loss(self, image_ids: list[int], caption_ids: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        feats = _floats(self.image_feats[image_ids], self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            img, _ = self.model.image.from_features(feats, patches=False, colours=self.colours_of(image_ids))  # [B, V]
            txt, ids, mask = self.text_vectors(caption_ids)  # [B, V]
            img, txt = img.float(), txt.float()
            contrastive = info_nce(img, txt, self.model.logit_scale)
            total, stats = contrastive, {"contrastive": float(contrastive.detach())}
            if self.cfg.word_loss_weight:
                words = self.word_loss(img, ids, mask)
                total = total + self.cfg.word_loss_weight * words
                stats["words"] = float(words.detach())
            if self.regularizer is not None:
                w_img = regularizer_weight(self.step, self.cfg.reg_weight_image, self.cfg.reg_warmup_steps)
                w_txt = regularizer_weight(self.step, self.cfg.reg_weight_text, self.cfg.reg_warmup_steps)
                reg_img, reg_txt = self.regularizer(img), self.regularizer(txt)
                total = total + w_img * reg_img + w_txt * reg_txt
                stats |= {"reg_image": float(reg_img.detach()), "reg_text": float(reg_txt.detach())}
        stats |= {"active_image": float((img > 0).sum(1).float().mean()), "active_text": float((txt > 0).sum(1).float().mean())}
        return total, stats

    def colours_of(self, image_ids) -> tuple[torch.Tensor, None] | None:
        """The cached colour shares of these training images, as ``ImageTower.from_features`` takes them."""
        if self.image_colours.shape[1] == 0:
            return None
        return torch.from_numpy(self.image_colours[image_ids]).to(self.device), None

    @torch.no_grad()
    def fit_familiarity(self) -> None:
        """Fit the image tower's familiarity on the training images (``fit_familiarity``), before the word rates."""
        image = self.model.image
        if not self.cfg.familiarity_prototypes:
            return
        pooled = torch.cat([_floats(self.image_feats[s : s + 1024], self.device).mean(dim=1).cpu()
                            for s in range(0, len(self.image_feats), 1024)])
        low, high = self.cfg.familiarity_quantiles  # a list when read from JSON
        prototypes, bounds = fit_familiarity(pooled, self.cfg.familiarity_prototypes, (low, high), self.cfg.seed)
        image.prototypes = prototypes.to(image.prototypes)
        image.familiar_range.copy_(bounds)
        log.info("familiarity: %d centroids, learned words fade in between cosines %.3f and %.3f",
                 len(prototypes), float(bounds[0]), float(bounds[1]))

    @torch.no_grad()
    def calibrate_word_rates(self) -> None:
        """Fit the image tower's ``word_scale`` on the training images (``fit_word_scale``)."""
        image = self.model.image
        image.word_scale.fill_(1.0)
        if not self.cfg.max_word_rate:
            return
        if len(self.image_feats) * self.cfg.max_word_rate < 1:
            log.warning("word-rate calibration skipped: %d training images are too few for a ceiling of %.0f%%",
                        len(self.image_feats), 100 * self.cfg.max_word_rate)
            return
        was_training = image.training
        image.eval()
        rows = []
        for start in range(0, len(self.image_feats), 256):
            feats = _floats(self.image_feats[start : start + 256], self.device)
            # without the colour words: they only ever push other words out of an image's strongest ten,
            # so a ceiling met without them is met with them. In bf16 where training is: the same
            # forward as every training step, at half the time (it was a third of a run's set-up and fitting)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                rows.append(image.from_features(feats, patches=False)[0][:, image.head_dims].float().cpu())
        weights = torch.cat(rows)
        sources = torch.as_tensor(self.image_source) if self.cfg.word_rate_per_source else None
        captioned = self.captioned_words() if self.cfg.word_rate_from_captions else None
        scale = fit_word_scale(weights, self.cfg.max_word_rate, captioned=captioned, sources=sources)
        image.word_scale.copy_(scale.to(image.word_scale.device))
        image.train(was_training)
        log.info("word-rate calibration: %d of %d words lowered (at most %.0f%% of %d training images each%s)",
                 int((scale < 1).sum()), len(scale), 100 * self.cfg.max_word_rate, len(weights),
                 ", in every source" if sources is not None else "")  # fmt: skip

    @torch.no_grad()
    def captioned_words(self) -> torch.Tensor | None:
        """``[N, D]``: 1 where a training image's captions use a head word (None without the
        exact-match path, which is what knows a caption's words)."""
        text = self.model.text
        if text.exact is None:
            return None
        dims = self.model.image.head_dims
        used = torch.zeros(len(self.sampler.caption_index), len(dims))
        for start in range(0, len(self.sampler.captions), 512):
            batch = list(range(start, min(start + 512, len(self.sampler.captions))))
            if self.text_cache is None:
                ids, mask = self.model.text_inputs([self.sampler.captions[i] for i in batch], self.device)
            else:
                _, mask_all, token_ids = self.text_cache
                ids, mask = (torch.from_numpy(np.asarray(a[batch])).to(self.device) for a in (token_ids, mask_all))
            words = text.exact.caption_words(ids, caption_mask(mask, text.skip_head, text.skip_tail))[:, dims].cpu()
            used.index_add_(0, torch.tensor([self.sampler.caption_image[i] for i in batch]), words)
        return used.clamp(max=1.0)

    # ---- checkpoints -------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        state = {"step": self.step, "trainable": trainable_state(self.model), "optimizer": self.optimizer.state_dict(),
                 "sampler_rng": self.sampler.rng.getstate(), "torch_rng": torch.get_rng_state(), "config": asdict(self.cfg)}
        self._save(CHECKPOINT, state)
        self.saved_step = self.step

    def _save(self, name: str, obj) -> None:
        """``torch.save`` into the run folder atomically: a kill or a full disk never leaves a torn file.
        Serialised in memory first: torch's own file writer reports a full disk as an iostream error."""
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        try:
            save_atomically(self.out / name, lambda tmp: tmp.write_bytes(buffer.getbuffer()))
        except OSError as exc:
            if is_disk_full(exc):
                raise self.disk_full(f"writing {name}") from exc
            raise

    def disk_full(self, doing: str) -> DiskFullError:
        """The error of a run whose disk filled up: where, at which step, and what it resumes from."""
        kept = (f"the checkpoint of step {self.saved_step} is kept ({self.out / CHECKPOINT})" if self.saved_step is not None
                else "no checkpoint was written yet")
        return DiskFullError(f"no space left on the disk holding the training run {self.out} while {doing} at step "
                             f"{self.step}: {kept}; free space (df -h {self.out}) and run the same command again, it "
                             "resumes from the last checkpoint")

    def maybe_resume(self) -> bool:
        path = self.out / CHECKPOINT
        if not path.is_file():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        load_trainable(self.model, state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.rng.setstate(state["sampler_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.step = self.saved_step = state["step"]
        log.info("resumed from %s at step %d", path, self.step)
        return True

    # ---- loop -------------------------------------------------------------------------------
    def fit(self) -> Path:
        """Train to the configured number of steps (resuming if a checkpoint exists); returns ``weights.pt``.

        A full disk raises :class:`DiskFullError` naming the run folder, the step and the checkpoint kept."""
        try:
            return self._fit()
        except DiskFullError:
            raise
        except OSError as exc:
            if is_disk_full(exc):  # the log, the config: what else the run writes
                raise self.disk_full("writing to its folder") from exc
            raise

    def _fit(self) -> Path:
        self.maybe_resume()
        (self.out / "train_config.json").write_text(json.dumps(asdict(self.cfg), indent=2))
        total, started = self.total_steps(), time.monotonic()
        self.model.train()
        bar = tqdm(total=total, initial=self.step, desc=f"train {self.cfg.card}", unit="step")
        micro_batches = 0
        with self.log_path.open("a") as log_file:
            while self.step < total:
                for image_ids, caption_ids in self.sampler.epoch():
                    loss, step_stats = self.loss(image_ids, caption_ids)
                    stats: dict[str, float | None] = dict(step_stats)  # + gate_text, None without a text gate
                    (loss / self.cfg.grad_accum).backward()
                    micro_batches += 1
                    if micro_batches % self.cfg.grad_accum:
                        continue
                    if self.cfg.max_grad_norm:
                        params = [p for group in self.optimizer.param_groups for p in group["params"]]
                        stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, self.cfg.max_grad_norm))
                    self.optimizer.step()
                    self.model.project_()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.step += 1
                    stats |= {"step": self.step, "loss": float(loss.detach()), "temperature": float(self.model.logit_scale.detach().exp()),
                              "gate_image": float(self.model.image.gate.detach()), "gate_text": float(self.model.text.gate.detach()) if self.model.text.gate is not None else None,
                              "elapsed_s": round(time.monotonic() - started, 1)}
                    log_file.write(json.dumps(stats) + "\n")
                    log_file.flush()  # the log is how a long run is watched
                    bar.update(1)
                    bar.set_postfix(loss=f"{stats['loss']:.3f}", img=f"{stats['active_image']:.0f}", txt=f"{stats['active_text']:.0f}")
                    if self.step % self.cfg.checkpoint_every == 0:
                        self.save_checkpoint()
                    out_of_time = self.cfg.max_minutes and (time.monotonic() - started) / 60 > self.cfg.max_minutes
                    if self.step >= total or out_of_time:
                        break
                if self.cfg.max_minutes and (time.monotonic() - started) / 60 > self.cfg.max_minutes:
                    log.warning("stopping at step %d: max_minutes=%s reached", self.step, self.cfg.max_minutes)
                    break
        bar.close()
        self.fit_familiarity()
        self.calibrate_word_rates()
        self.save_checkpoint()
        self._save(WEIGHTS, trainable_state(self.model))
        self.model.eval()
        return self.out / WEIGHTS


def train(cfg: TrainConfig) -> Path:
    return Trainer(cfg).fit()
