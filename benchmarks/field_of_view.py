"""Smears seen through a round field of view in a black frame.

Usage::

    python benchmarks/field_of_view.py [--model PATH] [--list benchmarks/splits/cbc-val.txt]
        [--radius 250] [--edges 0 20 40] [--no-frame-rule] [--limit N]

A photograph taken through a microscope often shows the round field of
view in a black frame. This multiplies each validation smear by a disc of
``--radius`` pixels around its centre (black outside), with a soft edge of
each width in ``--edges`` (brightness falling linearly to 0 over that many
pixels; 0 is a hard edge), segments it at the defaults and prints, for
the plain smears and for each edge:

- the cells whose centroid lies outside the disc, in the frame (on the
  plain smears these are real cells, outside the field of the others);
- the recall of the boxes that lie wholly inside the disc, less 5 pixels
  (the cells the frame leaves whole).

``--no-frame-rule`` turns off ``preprocess.outside_field`` (the frame is
then read as the network reads it), for the figures before the rule.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import annotation_for, read_list  # noqa: E402
from cellmatch import centroids, match, read_voc, summarise  # noqa: E402

HERE = Path(__file__).parent


def light(shape: tuple[int, int], radius: float, edge: float) -> tuple[np.ndarray, np.ndarray]:
    """How much light each pixel gets through the disc, and its distance from the centre."""
    height, width = shape
    yy, xx = np.mgrid[:height, :width]
    distance = np.hypot(yy - height / 2, xx - width / 2)
    if edge == 0:
        return (distance <= radius).astype(float), distance
    return np.clip((radius + edge / 2 - distance) / edge, 0.0, 1.0), distance


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="weights file (default: bundled)")
    parser.add_argument("--list", default=str(HERE / "splits" / "cbc-val.txt"))
    parser.add_argument("--radius", type=float, default=250.0)
    parser.add_argument("--edges", type=float, nargs="+", default=[0.0, 20.0, 40.0])
    parser.add_argument("--no-frame-rule", action="store_true",
                        help="read the frame as the network reads it (the figures before)")
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    args = parser.parse_args(argv)

    from PIL import Image

    import napari_milseg as ms
    import napari_milseg.preprocess as preprocess

    if args.no_frame_rule:
        preprocess.outside_field = lambda image, rgb=None: None
    model = ms.load_model(args.model)
    looks = [("plain", None)] + [(f"edge {edge:g} px", edge) for edge in args.edges]
    results = {name: [] for name, _ in looks}
    in_frame = {name: 0 for name, _ in looks}
    cells = {name: 0 for name, _ in looks}
    for path in read_list(Path(args.list))[: args.limit]:
        image = np.asarray(Image.open(path).convert("RGB"))
        boxes = read_voc(annotation_for(path))
        centre = np.array(image.shape[:2]) / 2
        inside = [
            box for box in boxes
            if max(np.hypot(y - centre[0], x - centre[1])
                   for y in (box.y0, box.y1) for x in (box.x0, box.x1)) <= args.radius - 5
        ]
        for name, edge in looks:
            picture = image
            if edge is not None:
                through, _ = light(image.shape[:2], args.radius, edge)
                picture = np.round(image * through[..., None]).astype(np.uint8)
            labels = ms.segment(picture, model=model).labels
            points = centroids(labels)  # (x, y)
            cells[name] += len(points)
            if len(points):
                off = np.hypot(points[:, 1] - centre[0], points[:, 0] - centre[1])
                in_frame[name] += int((off > args.radius).sum())
            results[name].append(match(points, inside))
    print(f"radius {args.radius:g} px, frame rule {'off' if args.no_frame_rule else 'on'}")
    for name, _ in looks:
        s = summarise(results[name])
        print(f"{name:>12}: cells {cells[name]}, in the frame {in_frame[name]}, "
              f"recall of the boxes inside {s['recall']:.3f} ({s['matched']} of {s['true']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
