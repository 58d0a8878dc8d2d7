"""Detection metrics for labelled cells against annotated boxes.

A predicted cell matches an annotated box when the cell's centroid lies
inside the box; pairs are chosen one-to-one so that the number of matches is
largest (ties broken by distance to the box centre). From the matches:
precision, recall, F1, and count accuracy ``1 - |sum(pred) - sum(true)| / sum(true)``.

:func:`match_interior` scores the same way but leaves the cells cut by the
image edge out on both sides (the CBC boxes skip most of them): an
unmatched cell that touches the edge is not counted as a false positive,
and an unmatched box that touches the edge not as a miss. Matched pairs
count wherever they are.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class Box:
    kind: str
    x0: float
    y0: float
    x1: float
    y1: float


def read_voc(path: str | Path) -> list[Box]:
    """Boxes of a Pascal VOC annotation file."""
    root = ET.parse(path).getroot()
    boxes = []
    for obj in root.findall("object"):
        b = obj.find("bndbox")
        boxes.append(
            Box(
                obj.find("name").text.strip(),
                *(float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")),
            )
        )
    return boxes


def centroids(labels: np.ndarray) -> np.ndarray:
    """``(n, 2)`` array of ``(x, y)`` centroids of labels ``1..n`` (empty labels skipped)."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return np.zeros((0, 2))
    cy_cx = np.array(ndi.center_of_mass(np.ones_like(labels), labels, ids))
    return cy_cx[:, ::-1]


@dataclass
class Match:
    """Matching result of one image."""

    predicted: int
    true: int
    matched: int
    matched_by_kind: dict[str, int] = field(default_factory=dict)
    true_by_kind: dict[str, int] = field(default_factory=dict)


def _pairs(points: np.ndarray, boxes: list[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``inside`` (points x boxes) and the one-to-one matched ``(rows, cols)``."""
    x, y = points[:, 0:1], points[:, 1:2]
    bx0 = np.array([b.x0 for b in boxes])[None]
    by0 = np.array([b.y0 for b in boxes])[None]
    bx1 = np.array([b.x1 for b in boxes])[None]
    by1 = np.array([b.y1 for b in boxes])[None]
    inside = (x >= bx0) & (x <= bx1) & (y >= by0) & (y <= by1)
    dist = np.hypot(x - (bx0 + bx1) / 2, y - (by0 + by1) / 2) / 1e4
    cost = np.where(inside, dist, 1e6)
    rows, cols = linear_sum_assignment(cost)
    ok = inside[rows, cols]
    return inside, rows[ok], cols[ok]


def match(points: np.ndarray, boxes: list[Box]) -> Match:
    """One-to-one matching of centroids ``(x, y)`` to the boxes containing them."""
    kinds: dict[str, int] = {}
    for b in boxes:
        kinds[b.kind] = kinds.get(b.kind, 0) + 1
    if len(points) == 0 or not boxes:
        return Match(len(points), len(boxes), 0, {k: 0 for k in kinds}, kinds)
    _, rows, cols = _pairs(points, boxes)
    by_kind = {k: 0 for k in kinds}
    for c in cols:
        by_kind[boxes[c].kind] += 1
    return Match(len(points), len(boxes), len(rows), by_kind, kinds)


def at_border(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which of the labels ``ids`` touch the first or last row or column."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[[0, -1], :] = True
    edge[:, [0, -1]] = True
    return np.isin(ids, np.unique(labels[edge]))


def box_at_border(box: Box, shape: tuple[int, int], margin: float = 2.0) -> bool:
    """Whether a box reaches within ``margin`` pixels of the image edge.

    VOC coordinates start at 1, so a box cut by the left edge has
    ``xmin == 1`` and one cut by the right edge ``xmax == width``.
    """
    height, width = shape
    return (
        box.x0 <= 1 + margin
        or box.y0 <= 1 + margin
        or box.x1 >= width - margin
        or box.y1 >= height - margin
    )


def match_interior(labels: np.ndarray, boxes: list[Box], margin: float = 2.0) -> Match:
    """:func:`match`, with the cells cut by the image edge left out when unmatched.

    Parameters
    ----------
    labels : ndarray, shape (H, W), int
        Predicted cells.
    boxes : list of Box
        Annotated cells, in VOC (1-based) pixel coordinates.
    margin : float
        A box within this many pixels of the edge counts as cut by it.

    Returns
    -------
    Match
        ``predicted`` and ``true`` count the matched pairs plus the unmatched
        cells and boxes that do not touch the edge.
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    points = centroids(labels)
    inner_cells = ~at_border(labels, ids)
    inner_boxes = np.array([not box_at_border(b, labels.shape, margin) for b in boxes], bool)
    rows = cols = np.zeros(0, dtype=int)
    if len(points) and boxes:
        _, rows, cols = _pairs(points, boxes)
    cell_hit = np.zeros(len(ids), dtype=bool)
    cell_hit[rows] = True
    box_hit = np.zeros(len(boxes), dtype=bool)
    box_hit[cols] = True
    kept = box_hit | inner_boxes
    true_by_kind: dict[str, int] = {}
    matched_by_kind: dict[str, int] = {}
    for b, keep, hit in zip(boxes, kept, box_hit, strict=True):
        matched_by_kind.setdefault(b.kind, 0)
        true_by_kind.setdefault(b.kind, 0)
        true_by_kind[b.kind] += int(keep)
        matched_by_kind[b.kind] += int(hit)
    return Match(
        int((cell_hit | inner_cells).sum()),
        int(kept.sum()),
        len(rows),
        matched_by_kind,
        true_by_kind,
    )


def unmatched(labels: np.ndarray, boxes: list[Box]) -> dict[str, int]:
    """Where the predicted cells without a box of their own lie.

    ``in_matched_box``: the centroid is in a box that another cell matched
    (often a second piece of one cell); ``border``: the cell touches the
    image edge (the CBC boxes skip most cut cells there); ``elsewhere``:
    the rest (cells the boxes missed, or false detections).
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    out = {"matched": 0, "in_matched_box": 0, "border": 0, "elsewhere": 0}
    if ids.size == 0:
        return out
    points = centroids(labels)
    border = at_border(labels, ids)
    matched = np.zeros(len(ids), dtype=bool)
    in_box = np.zeros(len(ids), dtype=bool)
    if boxes:
        inside, rows, _ = _pairs(points, boxes)
        matched[rows] = True
        in_box = inside.any(axis=1)
    rest = ~matched
    out["matched"] = int(matched.sum())
    out["in_matched_box"] = int((rest & in_box).sum())
    out["border"] = int((rest & ~in_box & border).sum())
    out["elsewhere"] = int((rest & ~in_box & ~border).sum())
    return out


def summarise(matches: list[Match]) -> dict[str, float]:
    """Precision, recall, F1, count accuracy and per-kind recall over images."""
    pred = sum(m.predicted for m in matches)
    true = sum(m.true for m in matches)
    hit = sum(m.matched for m in matches)
    precision = hit / pred if pred else 0.0
    recall = hit / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out = {
        "images": len(matches),
        "predicted": pred,
        "true": true,
        "matched": hit,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "count_accuracy": 1 - abs(pred - true) / true if true else 0.0,
    }
    kinds = sorted({k for m in matches for k in m.true_by_kind})
    for k in kinds:
        t = sum(m.true_by_kind.get(k, 0) for m in matches)
        h = sum(m.matched_by_kind.get(k, 0) for m in matches)
        out[f"recall_{k}"] = h / t if t else 0.0
    return out
