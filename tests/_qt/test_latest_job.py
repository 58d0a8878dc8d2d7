"""LatestJob: one background job at a time, the newest request last."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from qtpy.QtCore import QObject

from napari_milseg._latest_job import LatestJob


@pytest.fixture
def run():
    """A LatestJob with a job that records its argument and waits for ``release``."""
    release = threading.Event()
    ran, results = [], []

    def job(value):
        ran.append(value)
        release.wait(10)
        return value

    owner = QObject()  # kept alive here: a LatestJob goes with its owner
    latest = LatestJob(results.append, owner)
    return SimpleNamespace(
        latest=latest, job=job, release=release, ran=ran, results=results, owner=owner
    )


def test_requests_made_while_a_job_runs_collapse_to_the_newest(qtbot, run):
    run.latest.request(run.job, 1)
    for value in (2, 3, 4):
        run.latest.request(run.job, value)
    assert run.latest.busy
    run.release.set()
    qtbot.waitUntil(lambda: not run.latest.busy, timeout=10_000)
    assert run.ran == [1, 4]  # 2 and 3 were replaced before they could start
    assert run.results == [4]  # 1's result came after newer requests: not delivered


def test_drop_ignores_the_running_job_and_forgets_the_waiting_one(qtbot, run):
    run.latest.request(run.job, 1)
    run.latest.request(run.job, 2)
    run.latest.drop()
    run.release.set()
    qtbot.waitUntil(lambda: not run.latest.busy, timeout=10_000)
    assert run.ran == [1] and run.results == []

    run.latest.request(run.job, 3)  # a later request is delivered again
    qtbot.waitUntil(lambda: not run.latest.busy, timeout=10_000)
    assert run.results == [3]
