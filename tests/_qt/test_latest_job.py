"""LatestJob: one background job at a time, the newest request last."""

from __future__ import annotations

import threading

from qtpy.QtCore import QObject

from napari_milseg._latest_job import LatestJob


def test_requests_made_while_a_job_runs_collapse_to_the_newest(qtbot):
    owner = QObject()
    release = threading.Event()
    ran, results = [], []

    def job(value):
        ran.append(value)
        release.wait(10)
        return value

    latest = LatestJob(results.append, owner)
    latest.request(job, 1)
    for value in (2, 3, 4):
        latest.request(job, value)
    assert latest.busy
    release.set()
    qtbot.waitUntil(lambda: not latest.busy, timeout=10_000)
    assert ran == [1, 4]  # 2 and 3 were replaced before they could start
    assert results == [4]  # 1's result came after newer requests: not delivered


def test_drop_ignores_the_running_job_and_forgets_the_waiting_one(qtbot):
    owner = QObject()
    release = threading.Event()
    ran, results = [], []

    def job(value):
        ran.append(value)
        release.wait(10)
        return value

    latest = LatestJob(results.append, owner)
    latest.request(job, 1)
    latest.request(job, 2)
    latest.drop()
    release.set()
    qtbot.waitUntil(lambda: not latest.busy, timeout=10_000)
    assert ran == [1] and results == []

    latest.request(job, 3)  # a later request is delivered again
    qtbot.waitUntil(lambda: not latest.busy, timeout=10_000)
    assert results == [3]
