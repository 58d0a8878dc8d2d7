"""Make ``docs/images/segment-widget.png``: the plugin at work in a real napari window.

Opens the sample smear, docks "Segment cells" and "Edit and measure cells",
segments with the bundled model and saves a screenshot of the whole window.
It needs the bundled weights and an OpenGL context: a desktop session, or
on a headless machine ``xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshot.py``.
Without OpenGL it stops with a message instead of saving an empty canvas.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

OUT = Path(__file__).parent / "images" / "segment-widget.png"


def main(out: Path = OUT) -> int:
    import napari
    from napari._vispy.utils.gl import get_gl_extensions
    from qtpy.QtWidgets import QApplication

    from napari_milseg.model import bundled_model_path

    if not bundled_model_path().exists():
        print(f"no bundled model at {bundled_model_path()}", file=sys.stderr)
        return 1
    viewer = napari.Viewer(show=True)
    try:
        if not get_gl_extensions():
            raise RuntimeError("empty GL extension string")
    except Exception as err:  # noqa: BLE001 - any failure means no usable OpenGL
        print(f"no OpenGL context, cannot draw the canvas: {err}", file=sys.stderr)
        viewer.close()
        return 1
    viewer.window.resize(1500, 950)
    viewer.open_sample("napari-milseg", "blood_smear")
    _, seg = viewer.window.add_plugin_dock_widget("napari-milseg", "Segment cells")
    _, cells = viewer.window.add_plugin_dock_widget("napari-milseg", "Edit and measure cells")
    if not seg.segment():
        return 1
    deadline = time.monotonic() + 300
    while seg.running and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    _settle(50)  # let the table and the canvas catch up
    if seg.cells_layer is None:
        print(f"segmentation failed: {seg.status_label.text()}", file=sys.stderr)
        return 1
    viewer.layers.selection.active = seg.cells_layer
    viewer.reset_view()  # the docks narrowed the canvas after the image was framed
    _settle(10)
    out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(out), canvas_only=False, flash=False)
    print(f"{seg.count_label.text()}; saved {out}")
    viewer.close()
    return 0


def _settle(rounds: int) -> None:
    """Let Qt handle pending events for ``rounds`` short pauses."""
    from qtpy.QtWidgets import QApplication

    for _ in range(rounds):
        QApplication.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main())
