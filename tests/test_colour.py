import dataclasses

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from napari_milseg.colour import (
    TurnChoice,
    background_colour,
    choose_turn_steps,
    to_lab,
    turn_colours,
)
from napari_milseg.heatmap import predict_heatmap, predict_tile
from napari_milseg.model import MilModel
from napari_milseg.progress import run

GREY = (0.85, 0.85, 0.85)
RED = (0.75, 0.25, 0.3)
TEAL = (0.2, 0.6, 0.6)


class RedNet(nn.Module):
    """Logit +5 where red exceeds the mean of green and blue by 0.15 or more, -5 where
    by 0.05 or less, averaged over 4x4 blocks: finds red cells only, and the edge of its
    mask does not move with how red they are."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(100.0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = 0.25 * x + 0.5
        redness = rgb[:, :1] - 0.5 * (rgb[:, 1:2] + rgb[:, 2:3]) - 0.1
        return F.avg_pool2d(self.gain * redness.clamp(-0.05, 0.05), 4)


def red_model() -> MilModel:
    return MilModel(net=RedNet().eval(), diameter=32.0, source="toy")


def discs(colour, shape=(96, 128), radius=14, centres=((30, 30), (60, 90), (40, 70))):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.empty((*shape, 3), np.float32)
    image[:] = GREY
    inside = np.zeros(shape, bool)
    for cy, cx in centres:
        inside |= (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    image[inside] = colour
    return image, inside


def test_background_colour_is_the_bright_flat_part():
    image, _ = discs(TEAL)
    np.testing.assert_allclose(background_colour(to_lab(image)), to_lab(image[:1, :1])[0, 0],
                               atol=1e-3)


def test_turn_keeps_lightness_background_and_distance_from_it():
    image, inside = discs(TEAL)
    turned = turn_colours(image, 150)
    before, after = to_lab(image), to_lab(turned)
    np.testing.assert_allclose(turned[~inside], image[~inside], atol=1e-4)
    np.testing.assert_allclose(after[..., 0], before[..., 0], atol=0.05)
    bg = background_colour(before)
    np.testing.assert_allclose(np.linalg.norm(after - bg, axis=-1),
                               np.linalg.norm(before - bg, axis=-1), atol=0.05)
    # the hue did move: teal discs come out reddish
    assert turned[inside][:, 0].mean() > turned[inside][:, 1:].mean() + 0.1


def test_turning_back_restores_the_image_and_zero_is_a_copy():
    image, _ = discs(TEAL)
    back = turn_colours(turn_colours(image, 70), -70)
    np.testing.assert_allclose(back, image, atol=1e-3)
    same = turn_colours(image, 360)
    np.testing.assert_array_equal(same, image)
    assert same is not image


def test_turn_about_a_given_background_is_the_same_for_a_tile():
    image, _ = discs(TEAL)
    bg = background_colour(to_lab(image))
    whole = turn_colours(image, -60, bg)
    np.testing.assert_allclose(turn_colours(image[20:70, 10:90], -60, bg), whole[20:70, 10:90],
                               atol=1e-5)


def test_heatmap_turns_colours_as_the_model_says():
    image, inside = discs(TEAL)
    image = np.round(image * 255).astype(np.uint8)  # 8-bit: not stretched
    plain = predict_heatmap(image, red_model())
    assert plain[inside].max() < 0.5  # the model does not see teal cells
    turned_model = dataclasses.replace(red_model(), colour_turn=180.0)
    heat = predict_heatmap(image, turned_model)
    with torch.inference_mode():
        expected = predict_tile(red_model(), turn_colours(image / 255.0, 180.0), 1.0)
    np.testing.assert_allclose(heat, expected, atol=1e-5)
    from scipy import ndimage as ndi

    outside = ~ndi.binary_dilation(inside, iterations=4)
    assert heat[inside].mean() > 0.8 and heat[outside].max() < 0.5


def test_choice_finds_the_turn_that_shows_the_cells():
    images = [discs(TEAL, centres=c)[0] for c in (((30, 30), (60, 90)), ((50, 50),), ((40, 100),))]
    reports = []
    choice = run(choose_turn_steps(images, red_model(), 28.0), reports.append)
    assert isinstance(choice, TurnChoice) and choice.images == 3
    assert choice.degrees != 0
    assert choice.agreement[choice.degrees] > choice.agreement[0.0] + 0.5
    assert reports[-1].step == reports[-1].total == len(choice.agreement) * 3
    card = choice.card()
    assert card["colour_turn"] == choice.degrees and "0" in card["colour_turn_agreement"]
    assert "colours turned by" in choice.summary()


def test_no_turn_when_the_model_already_sees_the_cells():
    images = [discs(RED)[0] for _ in range(3)]
    choice = run(choose_turn_steps(images, red_model(), 28.0))
    assert choice.degrees == 0.0
    assert choice.agreement[0.0] > 0.8
    assert "left as they are" in choice.summary()


def test_choice_needs_images():
    with pytest.raises(ValueError, match="at least one image"):
        run(choose_turn_steps([], red_model(), 28.0))


def test_model_file_keeps_its_turn_and_old_files_load_unturned(tmp_path):
    from napari_milseg.model import ModelError, load_model, new_model, save_model

    model = new_model(diameter=50, device="cpu", seed=0)
    assert model.colour_turn == 0.0
    model.colour_turn = -90.0
    path = save_model(model, tmp_path / "turned.pt")
    assert load_model(path, "cpu").colour_turn == -90.0
    blob = torch.load(path, weights_only=True)
    del blob["colour_turn"]
    torch.save(blob, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt", "cpu").colour_turn == 0.0
    blob["colour_turn"] = float("nan")
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="colour turn"):
        load_model(tmp_path / "bad.pt", "cpu")
    assert load_model(None).colour_turn == 0.0
