"""A small live plot of the training loss for the Fine-tune model panel."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QSize, Qt
from qtpy.QtGui import QColor, QPainter, QPen, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget


class LossPlot(QWidget):
    """A light sparkline of the training loss: per step (thin) and per epoch (dots).

    Drawn with QPainter: no plotting library is loaded for it.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.steps: list[float] = []
        self.epochs: list[tuple[int, float]] = []  # (steps done, mean loss)
        self.total = 0
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Training loss: thin line per step, dots per epoch (mean)")

    def sizeHint(self) -> QSize:
        return QSize(240, 90)

    def clear(self, total: int = 0) -> None:
        self.steps, self.epochs, self.total = [], [], total
        self.update()

    def add_step(self, loss: float, total: int | None = None) -> None:
        if total:
            self.total = total
        if math.isfinite(loss):
            self.steps.append(float(loss))
            self.update()

    def add_epoch(self, loss: float) -> None:
        if math.isfinite(loss):
            self.epochs.append((len(self.steps), float(loss)))
            self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        try:
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            text = self.palette().windowText().color()
            rect = self.rect().adjusted(4, 4, -4, -4)
            if not self.steps:
                painter.setPen(text)
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "loss appears here")
                return
            values = self.steps + [v for _, v in self.epochs]
            low, high = min(values), max(values)
            if high - low < 1e-9:
                low, high = low - 0.5, high + 0.5
            n = max(self.total, len(self.steps), 2)

            def point(i: float, v: float) -> QPointF:
                x = rect.left() + rect.width() * (i / (n - 1) if n > 1 else 0)
                y = rect.bottom() - rect.height() * (v - low) / (high - low)
                return QPointF(x, y)

            faint = QColor(text)
            faint.setAlpha(110)
            painter.setPen(QPen(faint, 1))
            painter.drawPolyline(QPolygonF([point(i, v) for i, v in enumerate(self.steps)]))
            accent = QColor(255, 140, 0)
            painter.setPen(QPen(accent, 2))
            marks = [point(max(i - 1, 0), v) for i, v in self.epochs]
            if len(marks) > 1:
                painter.drawPolyline(QPolygonF(marks))
            painter.setBrush(accent)
            for p in marks:
                painter.drawEllipse(p, 3, 3)
            painter.setPen(text)
            painter.drawText(rect, Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignRight,
                             f"{high:.3g}")
            painter.drawText(rect, Qt.AlignmentFlag.AlignBottom | Qt.AlignmentFlag.AlignRight,
                             f"{low:.3g}")
        finally:
            painter.end()
