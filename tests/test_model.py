"""Loading model files: every damaged file is refused with one clear message."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from napari_milseg.model import ModelError, load_model  # noqa: E402


def _damaged(source, path, change):
    blob = torch.load(source, map_location="cpu", weights_only=True)
    change(blob)
    torch.save(blob, path)
    return path


def _shrink_a_layer(blob):
    name = next(k for k, v in blob["state_dict"].items() if v.ndim == 4)
    blob["state_dict"][name] = blob["state_dict"][name][:1]


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda b: b.pop("state_dict"), "holds no network weights"),
        (lambda b: b.update(state_dict=[1, 2, 3]), "holds no network weights"),
        (lambda b: b.update(state_dict={"w": 5}), "holds no network weights"),
        (lambda b: b.update(diameter="abc"), "no valid training cell diameter.*'abc'"),
        (lambda b: b.update(diameter=1e-9), "no valid training cell diameter"),
        (_shrink_a_layer, "does not fit the network: size mismatch for"),
    ],
)
def test_a_damaged_model_file_is_refused_with_what_is_wrong(random_model_path, tmp_path,
                                                            change, match):
    path = _damaged(random_model_path, tmp_path / "damaged.pt", change)
    with pytest.raises(ModelError, match=match):
        load_model(path)


def test_a_damaged_card_costs_the_card_not_the_model(random_model_path, tmp_path):
    path = _damaged(random_model_path, tmp_path / "card.pt", lambda b: b.update(card=5))
    model = load_model(path)
    assert model.card == {}


def test_random_bytes_are_not_a_model_and_torch_advice_is_left_out(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ModelError, match="junk.pt is not a readable") as err:
        load_model(path)
    assert "weights_only" not in str(err.value)
