"""Tests for napari_milseg.params: defaults, immutability, validation messages."""

from __future__ import annotations

import dataclasses
import math

import pytest

from napari_milseg.params import (
    DEFAULT_INNER,
    DEFAULT_OUTER,
    SegmentParams,
    TrainParams,
    check_diameter,
    check_thresholds,
)


def test_segment_defaults():
    params = SegmentParams()
    assert (params.inner, params.outer, params.diameter) == (0.8, 0.5, None)
    assert (DEFAULT_INNER, DEFAULT_OUTER) == (0.8, 0.5)


def test_segment_params_are_frozen():
    params = SegmentParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.inner = 0.9


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"inner": 1.0}, "inner"),
        ({"inner": 0.0, "outer": 0.0}, "inner"),
        ({"inner": math.nan}, "inner"),
        ({"inner": math.inf}, "inner"),
        ({"inner": "0.8"}, "inner"),
        ({"outer": -0.1}, "outer"),
        ({"outer": 0.0}, "outer"),
        ({"outer": None}, "outer"),
        ({"inner": 0.5, "outer": 0.5}, "outer"),
        ({"inner": 0.4, "outer": 0.6}, "outer"),
        ({"diameter": 0}, "diameter"),
        ({"diameter": -10.0}, "diameter"),
        ({"diameter": math.nan}, "diameter"),
        ({"diameter": math.inf}, "diameter"),
        ({"diameter": True}, "diameter"),
        ({"diameter": "30"}, "diameter"),
        ({"diameter": 3.9}, "diameter"),
    ],
)
def test_segment_params_reject_bad_values_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SegmentParams(**kwargs)


@pytest.mark.parametrize(("inner", "outer"), [(0.8, 0.5), (0.99, 0.01), (0.6, 0.59)])
def test_check_thresholds_accepts_ordered_pairs_inside_0_1(inner, outer):
    check_thresholds(inner, outer)
    assert (SegmentParams(inner, outer).inner, SegmentParams(inner, outer).outer) == (inner, outer)


def test_threshold_order_message_names_both():
    with pytest.raises(ValueError, match=r"outer \(0\.7\) must be below inner \(0\.6\)"):
        check_thresholds(0.6, 0.7)


@pytest.mark.parametrize("diameter", [None, 4, 4.0, 30, 512.5])
def test_check_diameter_accepts(diameter):
    check_diameter(diameter)
    assert SegmentParams(diameter=diameter).diameter == diameter


def test_train_defaults_and_frozen():
    params = TrainParams()
    assert (params.epochs, params.batch_size, params.seed, params.device) == (10, 16, 0, "auto")
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.epochs = 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"epochs": -1}, "epochs"),
        ({"epochs": 2.5}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"crops_per_image": -1}, "crops_per_image"),
        ({"epochs": 3, "warmup_epochs": 4}, "warmup_epochs"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": 1.5}, "learning_rate"),
        ({"learning_rate": math.nan}, "learning_rate"),
        ({"diameter": 2}, "diameter"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_train_params_reject_bad_values_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainParams(**kwargs)


@pytest.mark.parametrize("text, value", [("", None), ("  ", None), ("0", None), ("42", 42.0),
                                         (" 7.5 ", 7.5)])
def test_diameter_from_text_reads_a_field(text, value):
    from napari_milseg.params import diameter_from_text

    assert diameter_from_text(text) == value


@pytest.mark.parametrize("text, match", [("big", "must be a number"), ("-3", "positive"),
                                         ("2", "too small"), ("nan", "positive")])
def test_diameter_from_text_names_the_problem(text, match):
    from napari_milseg.params import diameter_from_text

    with pytest.raises(ValueError, match=match):
        diameter_from_text(text)


def test_numpy_numbers_from_a_script_are_taken_as_python_numbers():
    import json

    import numpy as np

    params = SegmentParams(inner=np.float32(0.8), outer=np.float64(0.5), diameter=np.int64(30))
    assert (type(params.inner), type(params.outer), type(params.diameter)) == (float, float, int)
    train = TrainParams(epochs=np.int64(3), learning_rate=np.float32(1e-4),
                        mil_weight=np.float64(0.0), diameter=np.float32(60))
    assert type(train.epochs) is int and train.epochs == 3
    json.dumps(vars(train))  # what goes on a model card
    check_thresholds(np.float32(0.8), np.float32(0.5))
    with pytest.raises(ValueError, match="inner"):
        SegmentParams(inner=np.bool_(True))
