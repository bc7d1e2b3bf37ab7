"""The PLIP image encoder: a CLIP-style Modified ResNet with an attention-pool head.

Differences from torchvision's ResNet, all needed to load the released weights unchanged:
a 3-convolution stem followed by a 2x2 average pool; anti-aliased strided bottlenecks (the
stride is an average pool placed before the third convolution and before the downsample
convolution, never a strided convolution); and an attention-pool head in place of global
average pooling. Parameter names follow the official checkpoint (``conv1``, ``layer1.0.
downsample.0``, ``attnpool.q_proj`` ...).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import VisionConfig


class ImageFeatures(NamedTuple):
    """Output of :meth:`ModifiedResNet.forward_features`.

    Attributes:
        stages: the four stage maps (strides 4, 8, 16, 32; layer4 at 16 with last_stride=1).
        embedding: the attention-pooled embedding ``(B, output_dim)`` (not normalised).
    """

    stages: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
    embedding: torch.Tensor


class Bottleneck(nn.Module):
    """Bottleneck block whose stride is an average pool (anti-aliasing), as in CLIP."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu3 = nn.ReLU(inplace=True)
        self.stride = stride

        self.downsample: nn.Module | None = None
        if stride > 1 or inplanes != planes * self.expansion:
            # Keys "-1" (pool, no parameters), "0" (conv), "1" (bn) match the released weights.
            self.downsample = nn.Sequential(
                OrderedDict(
                    [
                        ("-1", nn.AvgPool2d(stride) if stride > 1 else nn.Identity()),
                        ("0", nn.Conv2d(inplanes, planes * self.expansion, 1, bias=False)),
                        ("1", nn.BatchNorm2d(planes * self.expansion)),
                    ]
                )
            )

    def set_stride(self, stride: int) -> None:
        """Change the block's stride in place (the stride lives in its average pools)."""
        self.stride = stride
        self.avgpool = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()
        if self.downsample is not None:
            self.downsample[0] = nn.AvgPool2d(stride) if stride > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.avgpool(out)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        return self.relu3(out + identity)


class AttentionPool2d(nn.Module):
    """Attention pooling over a ``grid`` feature map, with the spatial mean as the only query.

    The map is flattened row-major over (H, W), its mean is prepended as token 0, a learned
    positional embedding of ``H*W + 1`` rows is added, and multi-head attention with separate
    q/k/v projections reads out token 0, projected by ``c_proj``.
    """

    def __init__(self, grid: tuple[int, int], embed_dim: int, num_heads: int, output_dim: int) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.positional_embedding = nn.Parameter(
            torch.randn(grid[0] * grid[1] + 1, embed_dim) / embed_dim**0.5
        )
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.c_proj = nn.Linear(embed_dim, output_dim)
        self.num_heads = num_heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        if (height, width) != self.grid:
            raise ValueError(
                f"attention pool expects a {self.grid[0]}x{self.grid[1]} feature map "
                f"(input size {self.grid[0] * 32}x{self.grid[1] * 32} at stride 32), got {height}x{width}"
            )
        tokens = x.flatten(2).transpose(1, 2)  # (B, HW, C)
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        tokens = tokens + self.positional_embedding.to(tokens.dtype)
        head_dim = channels // self.num_heads
        query = self.q_proj(tokens[:, :1]).view(batch, 1, self.num_heads, head_dim).transpose(1, 2)
        key = self.k_proj(tokens).view(batch, -1, self.num_heads, head_dim).transpose(1, 2)
        value = self.v_proj(tokens).view(batch, -1, self.num_heads, head_dim).transpose(1, 2)
        pooled = F.scaled_dot_product_attention(query, key, value)  # (B, heads, 1, head_dim)
        return self.c_proj(pooled.reshape(batch, channels))


class MaxPoolLinear(nn.Module):
    """The PLIP paper's default image head (Table 16c): global max-pool, then a linear map."""

    def __init__(self, embed_dim: int, output_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(embed_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(torch.amax(x, dim=(2, 3)))


class ModifiedResNet(nn.Module):
    """CLIP-style Modified ResNet image encoder of PLIP (any depth, width, input size)."""

    def __init__(self, config: VisionConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        width = config.width
        self.conv1 = nn.Conv2d(3, width // 2, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width // 2)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(width // 2, width // 2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width // 2)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width // 2, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.relu3 = nn.ReLU(inplace=True)
        self.avgpool = nn.AvgPool2d(2)

        self._inplanes = width
        self.layer1 = self._make_layer(width, config.layers[0])
        self.layer2 = self._make_layer(width * 2, config.layers[1], stride=2)
        self.layer3 = self._make_layer(width * 4, config.layers[2], stride=2)
        self.layer4 = self._make_layer(width * 8, config.layers[3], stride=config.last_stride)

        if config.pool == "max":
            self.maxpool = MaxPoolLinear(config.stage_channels[-1], config.output_dim)
        else:
            self.attnpool = AttentionPool2d(
                config.feature_grid, config.stage_channels[-1], config.heads, config.output_dim
            )

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(x) if self.config.pool == "max" else self.attnpool(x)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    @property
    def output_dim(self) -> int:
        return self.config.output_dim

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def forward_stages(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The four stage maps (layer1..layer4 outputs)."""
        x = x.to(self.conv1.weight.dtype)
        c2 = self.layer1(self.stem(x))
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return c2, c3, c4, c5

    def forward_features(self, x: torch.Tensor) -> ImageFeatures:
        """The four stage maps and the pooled embedding of a batch ``(B, 3, H, W)``."""
        stages = self.forward_stages(x)
        return ImageFeatures(stages=stages, embedding=self._pool(stages[-1]))  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding ``(B, output_dim)``, not normalised."""
        return self._pool(self.forward_stages(x)[-1])


