"""Instance masks of a segmentation model: prototypes x coefficients -> binary masks in image pixels -> COCO RLE.

The result is Ultralytics' default predict path (`retina_masks=False`) as its own `Annotator.masks` brings it
to the picture, pixel for pixel:

1. `ops.process_mask(protos, coeffs, boxes, input_hw, upsample=True)`: logits = coeffs @ protos, bilinearly
   upsampled to the model input (half-pixel centres, edges clamped), `> 0` (sigmoid > 0.5), zeroed outside
   the box (pixel columns `x1 <= c < x2`, rows likewise, box in input pixels);
2. `ops.scale_masks(mask, image_hw) > 0.5`: the letterbox padding cropped off, the rest bilinearly resized to
   the image and thresholded at 0.5.

It is the same arithmetic, but paid only inside each box: the logits are computed on the prototype cells
under the box, step 1 produces the input pixels of the box, step 2 the image pixels those can reach. Both
resamplings are one `cv2.warpAffine` each (bilinear with border replication is torch's clamped bilinear;
OpenCV quantises the weights to 1/32, which moves a pixel at most where a value sits within 1/32 of the
threshold). A detection whose mask is empty after step 1 is dropped, as Ultralytics' predictor drops it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from model_store.core.heads import RawDetections
from model_store.core.heads.segment import MASK_COEFFICIENTS, PROTO_STRIDE
from model_store.core.preprocess import LetterboxMeta


@dataclass(frozen=True)
class MaskWindow:
    """One binary mask in image pixels, stored as the window that holds all its set pixels."""

    top: int
    left: int
    pixels: np.ndarray  # (h, w) bool

    def full(self, height: int, width: int) -> np.ndarray:
        """The mask as a whole (height, width) bool image."""
        out = np.zeros((height, width), bool)
        h, w = self.pixels.shape
        out[self.top:self.top + h, self.left:self.left + w] = self.pixels
        return out


EMPTY = MaskWindow(0, 0, np.zeros((0, 0), bool))


def detection_masks(protos: np.ndarray, dets: RawDetections, meta: LetterboxMeta) -> tuple[RawDetections, list[dict]]:
    """The detections that keep a mask and each one's mask as COCO RLE in image pixels, from one image's
    prototypes (32, H/4, W/4) and the coefficients a segmentation head left in `dets.extra`. A detection whose mask
    is empty at the model input is left out, as Ultralytics' predictor leaves it out."""
    _, mh, mw = protos.shape
    coeffs = dets.extra if dets.extra is not None else np.zeros((0, MASK_COEFFICIENTS), np.float32)
    windows = assemble(protos, coeffs, dets.boxes_xyxy, (mh * PROTO_STRIDE, mw * PROTO_STRIDE), meta)
    keep = np.array([w is not None for w in windows], bool)
    return dets.take(keep), [to_rle(w, meta.height, meta.width) for w in windows if w is not None]


def assemble(protos: np.ndarray, coeffs: np.ndarray, boxes_in: np.ndarray, input_hw: tuple[int, int],
             meta: LetterboxMeta) -> list[MaskWindow | None]:
    """The image-pixel mask of each detection (None where Ultralytics drops the detection: its mask is empty at
    the model input; an empty window where the mask is set only in the letterbox padding).

    `protos` (nm, mh, mw) and `coeffs` (n, nm) come from the model; `boxes_in` (n, 4) are x1, y1, x2, y2 in
    model-input pixels (as decoded, not clipped); `input_hw` is the model input's (height, width)."""
    nm, mh, mw = protos.shape
    h_in, w_in = input_hw
    protos = np.asarray(protos, np.float32)
    out: list[MaskWindow | None] = []
    for coeff, box in zip(np.asarray(coeffs, np.float32), np.asarray(boxes_in, np.float32), strict=True):
        window = _input_mask(protos, coeff, box, (h_in, w_in))
        out.append(None if window is None else _to_image(*window, meta, (h_in, w_in)))
    return out


def _axis(lo: float, hi: float, size: int) -> tuple[int, int]:
    """The pixel indices i with lo <= i < hi, within [0, size): as (start, stop)."""
    return max(0, math.ceil(lo)), min(size, math.ceil(hi))


def _input_mask(protos: np.ndarray, coeff: np.ndarray, box: np.ndarray,
                input_hw: tuple[int, int]) -> tuple[int, int, np.ndarray] | None:
    """Step 1 inside the box: (row0, col0, bool mask) in input pixels, or None when no pixel is set."""
    nm, mh, mw = protos.shape
    h_in, w_in = input_hw
    r0, r1 = _axis(float(box[1]), float(box[3]), h_in)
    c0, c1 = _axis(float(box[0]), float(box[2]), w_in)
    if r0 >= r1 or c0 >= c1:
        return None
    sy, sx = mh / h_in, mw / w_in
    # prototype cells the bilinear samples of rows r0..r1-1 / cols c0..c1-1 read, one more each side
    py0, py1 = _cells(r0, r1, sy, mh)
    px0, px1 = _cells(c0, c1, sx, mw)
    cells = protos[:, py0:py1, px0:px1]
    logits = (coeff @ cells.reshape(nm, -1)).reshape(py1 - py0, px1 - px0)
    up = _resample(logits, (py0, px0), (sy, sx), (r0, c0), (r1 - r0, c1 - c0))
    mask = up > 0
    if not mask.any():
        return None
    return r0, c0, mask


def _cells(start: int, stop: int, scale: float, size: int) -> tuple[int, int]:
    lo = max(0.0, (start + 0.5) * scale - 0.5)
    hi = max(0.0, (stop - 0.5) * scale - 0.5)
    return max(0, math.floor(lo) - 1), min(size, math.floor(hi) + 3)


def _to_image(r0: int, c0: int, mask: np.ndarray, meta: LetterboxMeta, input_hw: tuple[int, int]) -> MaskWindow:
    """Step 2: the input-pixel mask window -> the image pixels it reaches after un-letterboxing (an empty window
    when none: a mask that lies in the letterbox padding only, whose detection Ultralytics keeps)."""
    h0, w0 = meta.height, meta.width
    top, left = int(round(meta.pad_y)), int(round(meta.pad_x))
    ch, cw = max(1, round(h0 * meta.scale_y)), max(1, round(w0 * meta.scale_x))  # the letterboxed content
    sy, sx = ch / h0, cw / w0
    # the mask window with a ring of zeros (what lies around it), clipped to the content
    y0, x0 = max(top, r0 - 1), max(left, c0 - 1)
    y1, x1 = min(top + ch, r0 + mask.shape[0] + 1), min(left + cw, c0 + mask.shape[1] + 1)
    if y0 >= y1 or x0 >= x1:
        return EMPTY
    src = np.zeros((y1 - y0, x1 - x0), np.float32)
    ty0, tx0 = max(r0, y0), max(c0, x0)
    ty1, tx1 = min(r0 + mask.shape[0], y1), min(c0 + mask.shape[1], x1)
    src[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0] = mask[ty0 - r0:ty1 - r0, tx0 - c0:tx1 - c0]
    # image pixels whose sample position (content coordinates) can touch [y0 - top - 1, y1 - top]
    oy0, oy1 = _reach(y0 - top, y1 - top, sy, h0)
    ox0, ox1 = _reach(x0 - left, x1 - left, sx, w0)
    if oy0 >= oy1 or ox0 >= ox1:
        return EMPTY
    # content coordinates -> src coordinates: src = content - (y0 - top)
    values = _resample(src, (y0 - top, x0 - left), (sy, sx), (oy0, ox0), (oy1 - oy0, ox1 - ox0))
    pixels = values > 0.5
    if not pixels.any():
        return EMPTY
    rows, cols = np.flatnonzero(pixels.any(1)), np.flatnonzero(pixels.any(0))
    pixels = pixels[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return MaskWindow(oy0 + int(rows[0]), ox0 + int(cols[0]), pixels)


def _reach(lo: int, hi: int, scale: float, size: int) -> tuple[int, int]:
    """Output pixels i (in [0, size)) whose sample (i + 0.5) * scale - 0.5 falls within (lo - 1, hi)."""
    start = math.floor((lo - 1 + 0.5) / scale - 0.5)
    stop = math.ceil((hi + 0.5) / scale - 0.5) + 1
    return max(0, start), min(size, stop)


def _resample(src: np.ndarray, src_origin: tuple[int, int], scale: tuple[float, float], dst_origin: tuple[int, int],
              dst_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear samples of a big image of which `src` is the window at `src_origin`, as torch's
    `F.interpolate(mode="bilinear", align_corners=False)` takes them: output pixel i samples the big image at
    (i + 0.5) * scale - 0.5. Returns the output window at `dst_origin` of size `dst_hw`.

    torch clamps a position below 0 to 0 and reads the last pixel for one past the end; border replication
    does the same wherever the window's edge is the big image's edge (positions never reach below -0.5), and
    callers give a window that covers every other position sampled."""
    (oy, ox), (sy, sx), (dy, dx) = src_origin, scale, dst_origin
    h, w = dst_hw
    # per axis: src_x = sx * (j + dx) + 0.5 * sx - 0.5 - ox for output column j of the window
    matrix = np.array([[sx, 0.0, sx * dx + 0.5 * sx - 0.5 - ox], [0.0, sy, sy * dy + 0.5 * sy - 0.5 - oy]], np.float64)
    return cv2.warpAffine(np.ascontiguousarray(src, np.float32), matrix, (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def to_rle(window: MaskWindow, height: int, width: int) -> dict:
    """COCO compressed RLE of the mask in a (height, width) image: {"size": [h, w], "counts": str}.

    RLE runs down the columns, so only the window's pixels are visited: each window column gets a sentinel
    pixel above and below standing for the rows outside the window (weighted by how many there are), the
    columns left and right of the window are one run of zeros each. A 12-megapixel photo's mask costs its window.
    """
    from pycocotools import mask as mask_utils  # here: only segmentation models need it

    h, w = window.pixels.shape
    if window.pixels.any():
        top, bottom = window.top, height - window.top - h
        nt, nb = int(top > 0), int(bottom > 0)  # a sentinel only where there are rows to stand for
        period = h + nt + nb
        padded = np.zeros((w, period), np.uint8)
        padded[:, nt:nt + h] = window.pixels.T
        flat = padded.ravel()
        starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
        ends = np.append(starts[1:], flat.size)
        counts = ends - starts
        if nt:  # top sentinels at k * period, each `top` rows
            counts += (_ceil_div(ends, period) - _ceil_div(starts, period)) * (top - 1)
        if nb:  # bottom sentinels at k * period + period - 1, each `bottom` rows
            counts += (_ceil_div(ends - period + 1, period) - _ceil_div(starts - period + 1, period)) * (bottom - 1)
        counts = counts.tolist()
        if flat[0]:
            counts.insert(0, 0)  # COCO's runs start with zeros
        counts[0] += window.left * height
        after = (width - window.left - w) * height
        if len(counts) % 2:  # the last run is zeros
            counts[-1] += after
        elif after:
            counts.append(after)
    else:
        counts = [height * width]
    rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}


def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -((-a) // b)


def from_rle(rle: dict) -> np.ndarray:
    """The (height, width) bool mask of a COCO RLE (compressed or not)."""
    from pycocotools import mask as mask_utils

    counts = rle["counts"]
    h, w = rle["size"]
    coded = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    if isinstance(counts, list):
        coded = mask_utils.frPyObjects(coded, h, w)
    return mask_utils.decode(coded).astype(bool)


def outline(rle: dict, side: int = 256, epsilon: float = 0.75) -> list[list[tuple[float, float]]]:
    """The outer contours of a mask, normalised to 0..1 of the image (x, y), for drawing over a picture at any
    size: traced on the mask scaled to at most `side` pixels a side and simplified (`epsilon` pixels there)."""
    h, w = (int(v) for v in rle["size"])
    full = from_rle(rle).astype(np.uint8)
    k = min(1.0, side / max(h, w, 1))
    sw, sh = max(1, round(w * k)), max(1, round(h * k))
    small = cv2.resize(full, (sw, sh), interpolation=cv2.INTER_NEAREST) if k < 1 else full
    contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        c = cv2.approxPolyDP(c, epsilon, True).reshape(-1, 2)
        if len(c) > 2:
            out.append([(round((x + 0.5) / sw, 4), round((y + 0.5) / sh, 4)) for x, y in c.tolist()])
    return out
