"""Fixtures for tests on a real, headless napari viewer."""

from __future__ import annotations

import os

# before anything loads Qt
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from toy_model import dark_model, disc_image  # noqa: E402

#: Three well separated dark discs (radius 18) on a 150x170 image.
CENTRES = [(40, 40), (40, 120), (100, 80)]


def _gl_works() -> bool:
    from napari._vispy.utils.gl import get_gl_extensions

    try:
        return bool(get_gl_extensions())
    except Exception:  # no OpenGL context on this machine
        return False


@pytest.fixture(scope="session", autouse=True)
def _answer_gl_queries_without_gl(qapp):
    """Let layers be added on machines without an OpenGL context.

    napari asks OpenGL for its extensions and texture limits when a layer is
    added, which fails where Qt's offscreen platform has no OpenGL (no X
    server, no Mesa context). The viewers in these tests are never drawn, so
    fixed answers are enough; where OpenGL works nothing is patched.
    """
    if _gl_works():
        yield
        return
    import napari._vispy.canvas as canvas
    import napari._vispy.layers.base as base
    import napari._vispy.layers.image as image
    import napari._vispy.layers.labels as labels

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(image, "get_gl_extensions", lambda: "GL_ARB_texture_float")
        for module in (canvas, base, image, labels):
            mp.setattr(module, "get_max_texture_sizes", lambda: (16384, 2048))
        yield


@pytest.fixture
def notes():
    """Messages shown in napari's notification area during the test, as (severity, text)."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def record(notification):
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def viewer(make_napari_viewer):
    return make_napari_viewer()


@pytest.fixture
def widget(viewer):
    """The Segment cells widget docked in the viewer, using the toy model."""
    from napari_milseg._widget import SegmentWidget

    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment cells")
    assert widget.set_model(dark_model())
    return widget


@pytest.fixture
def discs() -> np.ndarray:
    return disc_image((150, 170), CENTRES, 18)

