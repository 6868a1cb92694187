"""xresnet1d family (``xresnet1d``): fastai's XResNet in one dimension, as in the PTB-XL benchmark."""

from __future__ import annotations

import torch
from torch import nn

from ape_nas.models.cnn import check_choice, check_dropout, check_int, check_kernel, check_positive
from ape_nas.models.heads import HeadedClassifier
from ape_nas.models.registry import register_model

#: depth → (expansion, residual blocks per stage), as fastai's and Strodthoff et al.'s xresnet1d18/34/50
DEPTHS: dict[int, tuple[int, tuple[int, ...]]] = {18: (1, (2, 2, 2, 2)), 34: (1, (3, 4, 6, 3)), 50: (4, (3, 4, 6, 3))}
STEM = (32, 32, 64)  # stem channels at width 1
STAGE = 64  # stage channels at width 1 (before expansion), the same for every stage as in the benchmark


def _conv_bn(c_in: int, c_out: int, kernel_size: int, stride: int = 1, act: bool = True) -> nn.Sequential:
    """Conv ('same' padding for odd kernels; stride s gives ceil(time / s)) → BN (weight 1, bias 1e-3) → ReLU."""
    conv = nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight)
    bn = nn.BatchNorm1d(c_out)
    nn.init.constant_(bn.bias, 1e-3)
    return nn.Sequential(conv, bn, nn.ReLU(inplace=True)) if act else nn.Sequential(conv, bn)


class _ResBlock(nn.Module):
    """XResNet block: conv path + ResNet-D shortcut (avg-pool 2 when strided, then 1x1 conv + BN when the
    channels change), then ReLU.

    Conv path: expansion 1: conv(k, stride) → conv(k); expansion 4: 1x1 → conv(k, stride) → 1x1 to
    ``4 c_mid`` channels. The shortcut's average pool (fastai: kernel 2, ceil mode) is a one-sample replicate
    pad on the right then AvgPool1d(2): the same numbers (a last odd sample is averaged with itself) and
    ``ceil(time / 2)`` steps, like the strided convolution, with exporters that handle no ceil mode."""

    def __init__(self, c_in: int, c_mid: int, expansion: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        c_out = c_mid * expansion
        if expansion == 1:
            layers = [_conv_bn(c_in, c_mid, kernel_size, stride), _conv_bn(c_mid, c_out, kernel_size, act=False)]
        else:
            layers = [
                _conv_bn(c_in, c_mid, 1),
                _conv_bn(c_mid, c_mid, kernel_size, stride),
                _conv_bn(c_mid, c_out, 1, act=False),
            ]
        self.convpath = nn.Sequential(*layers)
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut += [nn.ReplicationPad1d((0, 1)), nn.AvgPool1d(2)]
        if c_in != c_out:
            shortcut.append(_conv_bn(c_in, c_out, 1, act=False))
        self.idpath = nn.Sequential(*shortcut)  # empty Sequential = identity
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, c_in, time) -> (batch, c_mid * expansion, ceil(time / stride))
        return self.act(self.convpath(x) + self.idpath(x))


@register_model("xresnet1d")
class XResNet1d(HeadedClassifier):
    """xresnet1d: three-conv stem, max-pool, four residual stages with ResNet-D shortcuts, concat pooling, head.

    Stem: three conv → BN → ReLU (``32, 32, 64`` channels times ``width``; the first with stride 2), then a
    max-pool (kernel 3, stride 2, padding 1). Four stages of residual blocks (``depth`` 18: 2, 2, 2, 2 basic
    blocks; 34: 3, 4, 6, 3 basic; 50: 3, 4, 6, 3 bottleneck blocks with expansion 4), each stage
    ``64 * width`` channels (times the expansion) as in the benchmark (fastai's grow to 512), the first block
    of stages 2-4 with stride 2; shortcuts average-pool before a 1x1 conv + BN (ResNet-D). All kernels are
    ``kernel_size``. The time axis shrinks by 32 in all (``ceil`` at every step), so any window length >= 1
    sample works (training mode needs batch x remaining time > 1 at the batch norms); 60 s at 32 Hz leaves 60
    steps. The embedding is the benchmark head's concat pooling, ``[max, mean]`` over time (``2 x`` the
    channels); the benchmark's BN → linear head layers are replaced by the shared head. Weights: Kaiming normal
    convolutions and BN bias 1e-3 as fastai, but the last BN of each residual path starts with weight 1, not
    fastai's 0, so every parameter has a gradient from the first step. Sized down for small wearable data:
    ``width`` 0.25 (16 channels) by default; ``width=1`` is the benchmark's network. After Strodthoff et al.,
    "Deep learning for ECG analysis: benchmarks and insights from PTB-XL" (IEEE JBHI 2021), and He et al.,
    "Bag of tricks for image classification with convolutional neural networks" (CVPR 2019).

    Args:
        in_channels: input signal channels.
        num_classes: output logits.
        depth: preset, 18, 34 or 50 (blocks per stage and expansion as in xresnet1d18/34/50).
        width: channel multiplier of stem and stages, in (0, 4]; channel counts are rounded (at least 1).
        kernel_size: odd kernel of the stem and the residual convolutions, >= 1 (the benchmark uses 5).
        dropout: dropout probability before the linear head, in [0, 1).
        hrv_fusion: head over the embedding alone (``"none"``) or fused with the window's HRV features
            (``"concat"``, ``"gated"``; see :mod:`ape_nas.models.heads`).
        n_features: length of the HRV feature vector (a data size set by training, not searched); used only
            when ``hrv_fusion`` is not ``"none"``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        depth: int = 18,
        width: float = 0.25,
        kernel_size: int = 5,
        dropout: float = 0.1,
        hrv_fusion: str = "none",
        n_features: int = 0,
    ) -> None:
        super().__init__()
        check_int("in_channels", in_channels, 1)
        check_int("num_classes", num_classes, 1)
        check_int("depth", depth, 1)
        check_choice("depth", depth, tuple(DEPTHS))
        width = check_positive("width", width, 4.0)
        check_kernel("kernel_size", kernel_size)
        dropout = check_dropout("dropout", dropout)

        expansion, blocks = DEPTHS[depth]
        stem = [max(1, round(c * width)) for c in STEM]
        c_mid = max(1, round(STAGE * width))
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c in enumerate(stem):
            layers.append(_conv_bn(c_in, c, kernel_size, stride=2 if i == 0 else 1))
            c_in = c
        layers.append(nn.MaxPool1d(3, stride=2, padding=1))
        for stage, n in enumerate(blocks):
            for j in range(n):
                stride = 2 if stage > 0 and j == 0 else 1
                layers.append(_ResBlock(c_in, c_mid, expansion, kernel_size, stride))
                c_in = c_mid * expansion
        self.features = nn.Sequential(*layers)
        self.make_head(2 * c_in, num_classes, dropout, hrv_fusion, n_features)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, in_channels, time)
        x = self.features(x)  # (batch, channels, ceil(time / 32))
        return torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)  # (batch, 2 * channels)
