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
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import VisionConfig
from .towers import register_vision_tower


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


@register_vision_tower("modified_resnet")
class ModifiedResNet(nn.Module):
    """CLIP-style Modified ResNet image encoder of PLIP (any depth, width, input size).

    Method names follow timm: ``forward_features`` is the unpooled layer4 map
    (``num_features`` channels), ``forward_head`` pools it with the attention pool
    (``head_hidden_size`` = ``output_dim``), ``forward_intermediates`` returns the stage maps.
    """

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

        self.attnpool: AttentionPool2d | None = None
        self.maxpool: MaxPoolLinear | None = None
        if config.pool == "max":  # the NeurIPS paper's default head (Table 16c)
            self.maxpool = MaxPoolLinear(config.stage_channels[-1], config.output_dim)
        else:
            self.attnpool = AttentionPool2d(
                config.feature_grid, config.stage_channels[-1], config.heads, config.output_dim
            )
        self.grad_checkpointing = False

    def _make_layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layers = [Bottleneck(self._inplanes, planes, stride)]
        self._inplanes = planes * Bottleneck.expansion
        layers += [Bottleneck(self._inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    # -- description ---------------------------------------------------------------------
    @property
    def output_dim(self) -> int:
        """Size of the pooled embedding (the attention pool's output)."""
        return self.config.output_dim

    @property
    def num_features(self) -> int:
        """Channels of :meth:`forward_features` (the trunk width: layer4's channels)."""
        return self.config.stage_channels[-1]

    @property
    def head_hidden_size(self) -> int:
        """Size of :meth:`forward_head`'s output."""
        return self.config.output_dim

    @property
    def stage_channels(self) -> tuple[int, int, int, int]:
        return self.config.stage_channels

    @property
    def reductions(self) -> tuple[int, int, int, int]:
        """Input-to-map stride of each stage (layer4: 32, or 16 with last stride 1)."""
        return 4, 8, 16, 16 * self.config.last_stride

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each bottleneck's activations in the backward pass (less memory, ~30% slower)."""
        self.grad_checkpointing = enable

    # -- forward -------------------------------------------------------------------------
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = self.relu3(self.bn3(self.conv3(x)))
        return self.avgpool(x)

    def _run_stage(self, stage: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            for block in stage:
                x = checkpoint(block, x, use_reentrant=False)
            return x
        return stage(x)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ):
        """Stage maps (layer1..layer4 outputs), with timm's ``forward_intermediates`` contract.

        Args:
            x: images ``(B, 3, H, W)``.
            indices: stage numbers 0..3 to return, or an int ``n`` for the last ``n`` stages
                (default: all four).
            norm: accepted for timm compatibility (there is no final norm).
            stop_early: with ``intermediates_only``, skip the stages after the last requested one.
            output_fmt: ``"NCHW"`` only.
            intermediates_only: return only the list of maps; otherwise
                ``(forward_features output, maps)``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        take = _stage_indices(indices)
        last = take[-1] if (intermediates_only and stop_early) else 3
        x = self.stem(x.to(self.conv1.weight.dtype))
        maps = []
        for i, stage in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)[: last + 1]):
            x = self._run_stage(stage, x)
            if i in take:
                maps.append(x)
        return maps if intermediates_only else (x, maps)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The unpooled layer4 map ``(B, num_features, H/32, W/32)`` (``H/16`` with last stride 1)."""
        x = self.stem(x.to(self.conv1.weight.dtype))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = self._run_stage(stage, x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a layer4 map to ``(B, head_hidden_size)``: the attention pool (released model) or
        max-pool + linear (``vision.pool="max"``); there is no classifier."""
        if self.maxpool is not None:
            return self.maxpool(x)
        if self.attnpool is None:
            raise ValueError("this encoder was built without its pooling head")
        return self.attnpool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled embedding ``(B, output_dim)``, not normalised."""
        return self.forward_head(self.forward_features(x))


def _stage_indices(indices: int | Sequence[int] | None) -> tuple[int, ...]:
    """timm's convention: ``None`` = all stages, an int ``n`` = the last ``n``, else the listed ones."""
    if indices is None:
        return (0, 1, 2, 3)
    if isinstance(indices, int):
        if not 1 <= indices <= 4:
            raise ValueError(f"indices as an int must be 1..4 (the last n stages), got {indices}")
        return tuple(range(4 - indices, 4))
    take = tuple(sorted(int(i) for i in indices))
    if not take or take[0] < 0 or take[-1] > 3:
        raise ValueError(f"indices must be stage numbers in 0..3, got {indices!r}")
    return take
