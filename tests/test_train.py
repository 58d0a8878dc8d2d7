import numpy as np
import pytest

from napari_milseg.params import MIN_POSITIVES, TrainParams
from napari_milseg.progress import run
from napari_milseg.train import train, train_steps
from smears import smear


def _smears(n, seed=0, shape=(96, 128)):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        centres = [tuple(int(v) for v in rng.integers(14, (shape[0] - 14, shape[1] - 14)))
                   for _ in range(3)]
        rgb, _ = smear(shape=shape, centres=centres, radius=12, seed=seed * 100 + i)
        out.append((rgb * 255).astype(np.uint8))
    return out


TINY = TrainParams(epochs=2, warmup_epochs=1, batch_size=2, crops_per_image=1, diameter=24)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"epochs": -1}, "epochs"),
        ({"epochs": True}, "epochs"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"warmup_epochs": 5, "epochs": 2}, "warmup_epochs"),
        ({"mil_weight": -1}, "mil_weight"),
        ({"mil_weight": True}, "mil_weight"),
        ({"mil_weight": float("nan")}, "mil_weight"),
        ({"mil_weight": 0, "warmup_epochs": 1}, "mil_weight"),
        ({"learning_rate": 2.0}, "learning_rate"),
        ({"diameter": -3}, "diameter"),
        ({"colour_turn": "some"}, "colour_turn"),
        ({"colour_turn": float("inf")}, "colour_turn"),
        ({"colour_turn": True}, "colour_turn"),
    ],
)
def test_train_params_reject_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        TrainParams(**kwargs)


def test_fine_tuning_trains_on_its_own_cells_alone_unless_asked_for_mil():
    import dataclasses

    def stages(params, init=None):
        reports = []
        model = run(train_steps(_smears(4), params=params, init=init), reports.append)
        return [r.info["stage"] for r in reports if r.info.get("epoch_done")], model.card

    base = dataclasses.replace(TINY, warmup_epochs=None)
    done, card = stages(base)  # from the bundled model
    assert done == ["self-training", "self-training"]
    assert card["warmup_epochs"] == 0 and card["mil_weight"] == 0.0
    done, card = stages(dataclasses.replace(base, warmup_epochs=1))
    assert done == ["MIL", "self-training"] and card["mil_weight"] == 1.0
    done, card = stages(dataclasses.replace(base, mil_weight=0.5))  # two MIL epochs first
    assert done == ["MIL", "MIL"] and card["mil_weight"] == 0.5
    done, card = stages(base, init="scratch")
    assert done == ["MIL", "self-training"] and card["mil_weight"] == 1.0
    done, card = stages(dataclasses.replace(base, mil_weight=0.0), init="scratch")
    assert done == ["self-training", "self-training"] and card["warmup_epochs"] == 0


def test_mil_weight_scales_the_mil_losses_of_self_training(monkeypatch):
    import dataclasses

    import napari_milseg.mil as mil

    real = mil.mil_loss

    def raised(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        return loss + 1000.0, stats

    monkeypatch.setattr(mil, "mil_loss", raised)
    for weight in (0.0, 1.0):
        params = dataclasses.replace(TINY, epochs=1, warmup_epochs=0, mil_weight=weight)
        reports = []
        run(train_steps(_smears(4), params=params), reports.append)
        losses = [r.info["loss"] for r in reports
                  if "loss" in r.info and not r.info.get("epoch_done")]
        assert losses and all((loss > 1000) == (weight > 0) for loss in losses), (weight, losses)


def test_too_few_positives_names_the_minimum():
    with pytest.raises(ValueError, match=f"at least {MIN_POSITIVES}"):
        next(train_steps(_smears(MIN_POSITIVES - 1), params=TINY, init="scratch"))


def test_images_smaller_than_a_cell_are_left_out_and_named(random_model_path):
    import dataclasses

    thumb = np.full((20, 20, 3), 200, np.uint8)
    params = dataclasses.replace(TINY, epochs=0, warmup_epochs=0)  # the colour turn still runs
    reports = []
    model = run(train_steps(_smears(4) + [thumb], [thumb], params, random_model_path),
                reports.append)
    left = [r for r in reports if "left_out" in r.info]
    assert len(left) == 1 and left[0].info["left_out"] == [("positive", 4), ("negative", 0)]
    assert "positive image 5 (20x20 px)" in left[0].message
    assert model.card["left_out"] == left[0].message
    with pytest.raises(ValueError, match=f"at least {MIN_POSITIVES} positive images at least"):
        run(train_steps(_smears(3) + [thumb], params=params, init=random_model_path))


def test_tiny_training_run_reports_progress_and_returns_a_model():
    reports = []
    model = run(train_steps(_smears(4), params=TINY, init="scratch"), reports.append)
    epoch_ends = [r for r in reports if r.info.get("epoch_done")]
    assert [r.info["epoch"] for r in epoch_ends] == [1, 2]
    assert [r.info["stage"] for r in epoch_ends] == ["MIL", "self-training"]
    assert all(np.isfinite(r.info["loss"]) for r in reports if "loss" in r.info)
    # steps only move forward and end at the total
    training = [r for r in reports if "loss" in r.info and not r.info.get("epoch_done")]
    assert [r.step for r in training] == sorted(r.step for r in training)
    assert training[-1].step == training[-1].total
    # every epoch end carries a usable snapshot, separate from the final model
    snapshot = epoch_ends[0].info["model"]
    assert snapshot is not model and snapshot.net is not model.net
    assert model.diameter == 24
    assert model.card["epochs"] == 2 and model.card["init"] == "scratch"
    assert model.card["positive_images"] == 4
    assert model.card["negatives"] == "synthesized from positives"
    assert not model.net.training


def test_given_negatives_are_used_instead_of_synthesized_ones():
    negatives = [np.full((96, 128, 3), 220, np.uint8) for _ in range(2)]
    model = train(_smears(4), negatives, TINY, init="scratch")
    assert model.card["negatives"] == "given"
    assert model.card["negative_images"] == 2


def test_fine_tuning_never_changes_the_loaded_model():
    import torch

    from napari_milseg.model import load_model

    bundled = load_model(None)
    before = {k: v.clone() for k, v in bundled.net.state_dict().items()}
    tuned = train(_smears(4), params=TINY)
    after = bundled.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert tuned.net is not bundled.net
    assert tuned.card["init"] == bundled.name
    # fine-tuning chose a colour turn (none, for smears the bundled model sees) and says so
    assert tuned.colour_turn == tuned.card["colour_turn"] == 0.0
    assert "0" in tuned.card["colour_turn_agreement"]
    assert bundled.colour_turn == 0.0


def test_a_given_colour_turn_turns_every_training_image_and_stays_with_the_model(monkeypatch):
    import dataclasses

    import napari_milseg.colour as colour

    turned = []
    real = colour.turn_colours
    monkeypatch.setattr(colour, "turn_colours",
                        lambda image, degrees, *a: turned.append(degrees) or real(image, degrees))
    negatives = [np.full((96, 128, 3), 220, np.uint8) for _ in range(2)]
    model = train(_smears(4), negatives, dataclasses.replace(TINY, colour_turn=90.0),
                  init="scratch")
    assert turned == [90.0] * 6
    assert model.colour_turn == model.card["colour_turn"] == 90.0


def test_zero_epochs_adapts_only_the_diameter_and_the_colour_turn():
    import dataclasses

    import torch

    from napari_milseg.model import load_model

    bundled = load_model(None)
    model = train(_smears(4), params=dataclasses.replace(TINY, epochs=0, warmup_epochs=0,
                                                         colour_turn=30.0))
    same = bundled.net.state_dict()
    assert all(torch.equal(v, same[k]) for k, v in model.net.state_dict().items())
    assert model.diameter == 24 and bundled.diameter != 24
    assert model.colour_turn == model.card["colour_turn"] == 30.0
    assert model.card["epochs"] == 0 and model.card["epoch_losses"] == []
    assert model.card["negatives"] == "none used (no training)"
    with pytest.raises(ValueError, match="at least 1 epoch"):
        next(train_steps(_smears(4), params=dataclasses.replace(TINY, epochs=0, warmup_epochs=0),
                         init="scratch"))


@pytest.mark.parametrize("turn, expected", [("keep", 45.0), (0.0, 0.0), (-30, -30.0)])
def test_keep_takes_the_starting_models_turn_and_an_angle_replaces_it(turn, expected):
    import dataclasses

    from napari_milseg.model import load_model

    start = dataclasses.replace(load_model(None), colour_turn=45.0)
    params = dataclasses.replace(TINY, epochs=0, warmup_epochs=0, colour_turn=turn)
    model = train(_smears(4), params=params, init=start)
    assert model.colour_turn == model.card["colour_turn"] == expected
    assert start.colour_turn == 45.0


def test_no_colour_turn_is_chosen_for_a_new_network(monkeypatch):
    import napari_milseg.colour as colour

    monkeypatch.setattr(colour, "choose_turn_steps", lambda *a: pytest.fail("chose a turn"))
    model = train(_smears(4), params=TINY, init="scratch")
    assert model.colour_turn == model.card["colour_turn"] == 0.0


def test_self_training_takes_a_closer_look_at_every_image(monkeypatch):
    """Each image's pseudo-labels also see its heatmap at twice the resolution."""
    import napari_milseg.selftrain as selftrain

    real = selftrain.confident_cells
    seen = []

    def spy(heatmap, foreground, cell_diameter, **kwargs):
        seen.append((heatmap.shape, kwargs.get("closer_look")))
        return real(heatmap, foreground, cell_diameter, **kwargs)

    monkeypatch.setattr(selftrain, "confident_cells", spy)
    train(_smears(4), params=TINY, init="scratch")
    assert len(seen) == 4
    for shape, closer in seen:
        assert closer is not None and closer.shape == shape


def test_same_seed_same_model():
    import torch

    a = train(_smears(4), params=TINY, init="scratch")
    b = train(_smears(4), params=TINY, init="scratch")
    for (k, va), vb in zip(a.net.state_dict().items(), b.net.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k


@pytest.mark.slow
def test_mil_learns_cells_from_image_labels_only():
    """Trained on synthetic smears with image-level labels, cells outscore background."""
    from napari_milseg.heatmap import predict_heatmap

    images = _smears(8, seed=1)
    model = train(images, params=TrainParams(epochs=6, warmup_epochs=6, batch_size=8,
                                             crops_per_image=4, diameter=24), init="scratch")
    test, truth = smear(shape=(96, 128), centres=((30, 40), (66, 90)), radius=12, seed=99)
    heat = predict_heatmap((test * 255).astype(np.uint8), model)
    assert heat[truth > 0].mean() > heat[truth == 0].mean() + 0.3


def test_training_sees_a_black_frame_around_the_field_of_view_as_background():
    from napari_milseg.train import _rgb

    rgb, truth = smear(shape=(120, 160), centres=((40, 50), (70, 100)), seed=3)
    image = np.round(rgb * 255).astype(np.uint8)
    yy, xx = np.mgrid[:120, :160]
    outside = np.hypot(yy - 60, xx - 80) > 55
    image[outside] = 0
    seen = _rgb(image, "framed")
    # the frame shows the slide's background colour, as segment fills it; the cells stay
    background = seen[~outside & (truth == 0)].mean(axis=0)
    np.testing.assert_allclose(seen[outside].mean(axis=0), background, atol=0.03)
    assert (seen[truth > 0].mean(axis=0) < background - 0.1).any()
