"""Tiny anchor-free detector (FCOS/YOLOv8 style, one stride-8 head) with a YOLOv8-layout output."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import nn

INPUT_SIZE = 320
NUM_CLASSES = 3
STRIDE = 8
# exp() of the raw distance is clamped so an untrained or diverging head cannot overflow to inf.
MAX_LOG_DIST = 6.0


def conv(c_in: int, c_out: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    """Conv + BatchNorm + ReLU (ReLU rather than SiLU: it is noticeably faster on CPU)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class TinyDetector(nn.Module):
    """Strided backbone to stride 32, a small top-down neck, and one dense head at stride 8."""

    def __init__(self, num_classes: int = NUM_CLASSES, width: int = 32) -> None:
        super().__init__()
        w = width
        self.num_classes = num_classes
        # Full-resolution layers dominate the cost on CPU, so the stem is thin and goes to stride 4 fast.
        self.stem = nn.Sequential(conv(3, w // 2, 2), conv(w // 2, w, 2))  # stride 4
        self.c3 = nn.Sequential(conv(w, 2 * w, 2), conv(2 * w, 2 * w))  # stride 8
        self.c4 = nn.Sequential(conv(2 * w, 3 * w, 2), conv(3 * w, 3 * w))  # stride 16
        self.c5 = nn.Sequential(conv(3 * w, 4 * w, 2), conv(4 * w, 4 * w))  # stride 32: big-object context
        self.lat5 = conv(4 * w, 2 * w, k=1)
        self.lat4 = conv(3 * w, 2 * w, k=1)
        self.smooth4 = conv(2 * w, 2 * w)
        self.head = conv(2 * w, 2 * w)
        self.pred = nn.Conv2d(2 * w, 4 + num_classes, 1)
        # Start with low class probabilities (focal-loss prior) so early training is not swamped by
        # the thousands of background cells.
        nn.init.constant_(self.pred.bias[4:], -4.6)
        nn.init.constant_(self.pred.bias[:4], 1.0)
        # Cell centres for the export size, precomputed so exported graphs carry them as one constant.
        self.grid_hw = (INPUT_SIZE // STRIDE, INPUT_SIZE // STRIDE)
        self.register_buffer("grid", self.anchors(*self.grid_hw), persistent=False)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Return the head's raw map [B, 4 + nc, H/8, W/8] (log box distances, class logits)."""
        p3 = self.c3(self.stem(x))
        p4 = self.c4(p3)
        p5 = self.c5(p4)
        t4 = self.smooth4(self.lat4(p4) + F.interpolate(self.lat5(p5), scale_factor=2.0, mode="nearest"))
        return self.pred(self.head(p3 + F.interpolate(t4, scale_factor=2.0, mode="nearest")))

    @staticmethod
    def anchors(h: int, w: int, device: torch.device | None = None) -> torch.Tensor:
        """Cell centres [H*W, 2] (x, y) in input pixels, row-major like the flattened head."""
        ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) * STRIDE
        xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) * STRIDE
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        return torch.stack((gx.reshape(-1), gy.reshape(-1)), dim=1)

    def decode(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn the raw map into boxes [B, N, 4] (x1, y1, x2, y2 pixels) and class logits [B, N, nc]."""
        h, w = raw.shape[2:]
        flat = raw.flatten(2).transpose(1, 2)  # [B, N, 4 + nc]
        dist = flat[..., :4].clamp(max=MAX_LOG_DIST).exp() * STRIDE  # l, t, r, b distances
        a = self.grid if (h, w) == self.grid_hw else self.anchors(h, w, raw.device)
        boxes = torch.cat((a - dist[..., :2], a + dist[..., 2:]), dim=-1)
        return boxes, flat[..., 4:]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """YOLOv8 layout: [B, 4 + nc, N], rows cx, cy, w, h (input pixels) then per-class sigmoid scores."""
        boxes, logits = self.decode(self.raw(images))
        xy = (boxes[..., :2] + boxes[..., 2:]) / 2
        wh = boxes[..., 2:] - boxes[..., :2]
        return torch.cat((xy, wh, logits.sigmoid()), dim=-1).transpose(1, 2)


def num_anchors(size: int = INPUT_SIZE) -> int:
    """Number of output columns N for a square input of `size` pixels."""
    return (size // STRIDE) ** 2
