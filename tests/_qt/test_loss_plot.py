import math

from napari_milseg._loss_plot import LossPlot


def test_loss_plot_keeps_finite_losses_and_paints(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.clear(total=4)
    for loss in (1.0, math.nan, 0.5, math.inf, 0.25):
        plot.add_step(loss)
    plot.add_epoch(0.6)
    plot.add_epoch(math.nan)
    assert plot.steps == [1.0, 0.5, 0.25]
    assert plot.epochs == [(3, 0.6)]
    plot.resize(240, 90)
    image = plot.grab().toImage()  # runs paintEvent
    assert image.width() == 240
    plot.clear()
    assert plot.steps == [] and plot.epochs == [] and plot.total == 0
    plot.grab()  # the empty plot paints its placeholder
