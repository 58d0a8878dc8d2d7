"""The Fine-tune panel's job, run without Qt: messages for bad input, a saved model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_milseg._finetune_job import Done, Failure, finetune_job
from napari_milseg.params import MIN_POSITIVES, TrainParams
from napari_milseg.progress import Progress, run
from smears import smear


def _drain(job):
    """Run a job generator to its end; return (reports, result)."""
    reports = []
    return reports, run(job, reports.append)


def _job(positives, out, init="scratch", layers=(), params=None):
    params = params or TrainParams(epochs=1, batch_size=2, crops_per_image=1, diameter=24.0,
                                   device="cpu")
    return finetune_job([str(p) for p in positives], [], list(layers), params, init, out,
                        overwrite=False, command=None)


def test_a_missing_folder_is_a_failure_naming_it(tmp_path):
    missing = tmp_path / "no such folder"
    reports, result = _drain(_job([missing], tmp_path / "m.pt"))
    assert isinstance(result, Failure)
    assert "no such folder" in result.message
    assert not (tmp_path / "m.pt").exists()


def test_too_few_images_is_a_failure_with_the_minimum(tmp_path):
    folder = tmp_path / "pos"
    folder.mkdir()
    for i in range(MIN_POSITIVES - 1):
        rgb, _ = smear(seed=i)
        tifffile.imwrite(folder / f"s{i}.tif", (rgb * 255).astype(np.uint8))
    _, result = _drain(_job([folder], tmp_path / "m.pt"))
    assert isinstance(result, Failure)
    assert str(MIN_POSITIVES) in result.message
    assert not (tmp_path / "m.pt").exists()


def test_a_corrupt_start_model_is_a_failure(tmp_path):
    folder = tmp_path / "pos"
    folder.mkdir()
    for i in range(MIN_POSITIVES):
        rgb, _ = smear(seed=i)
        tifffile.imwrite(folder / f"s{i}.tif", (rgb * 255).astype(np.uint8))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    _, result = _drain(_job([folder], tmp_path / "m.pt", init=str(bad)))
    assert isinstance(result, Failure)
    assert "bad.pt" in result.message


@pytest.mark.slow
def test_layers_alone_train_and_save_a_model_with_its_card(tmp_path):
    layers = [((smear(seed=i)[0] * 255).astype(np.uint8), f"layer {i}", True)
              for i in range(MIN_POSITIVES)]
    out = tmp_path / "lab.pt"
    reports, result = _drain(_job([], out, layers=layers))
    assert all(isinstance(r, Progress) for r in reports)
    assert any(r.info.get("epoch_done") for r in reports)
    assert isinstance(result, Done) and result.error is None
    assert result.path == out and out.exists()
    card = json.loads(result.card_path.read_text())
    assert card["made_with"] == "napari Fine-tune panel"
    assert card["positive_images"] == MIN_POSITIVES
