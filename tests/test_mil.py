import torch

from napari_milseg.mil import bag_windows, mil_loss


def test_bag_windows_shape_and_content():
    scores = torch.arange(64.0).view(1, 1, 8, 8)
    bags = bag_windows(scores, bag=4, stride=4)
    assert bags.shape == (1, 4, 16)
    assert bags[0, 0].max() == 27  # top-left window holds rows 0-3, cols 0-3
    assert bags[0, 3].max() == 63


def _loss(pos, neg, valid=None, background=None):
    valid = torch.ones_like(pos) if valid is None else valid
    background = torch.zeros_like(pos, dtype=torch.bool) if background is None else background
    return mil_loss(pos, neg, valid, background, bag=4, stride=4)


def test_positive_bag_needs_only_one_high_instance():
    low = torch.full((1, 1, 4, 4), -5.0)
    one_high = low.clone()
    one_high[0, 0, 1, 2] = 5.0
    neg = torch.full((1, 1, 4, 4), -5.0)
    assert _loss(one_high, neg)[0] < _loss(low, neg)[0]


def test_negative_bag_mines_its_top_five():
    pos = torch.full((1, 1, 4, 4), 5.0)
    neg = torch.full((1, 1, 4, 4), -5.0, requires_grad=True)
    with torch.no_grad():
        neg[0, 0, :2, :3] = 3.0  # six high instances
    loss, stats = _loss(pos, neg)
    loss.backward()
    assert int((neg.grad != 0).sum()) == 5
    assert stats["neg_score"] > 0.9


def test_positive_bags_without_foreground_are_skipped():
    pos = torch.full((1, 1, 4, 4), -5.0, requires_grad=True)
    neg = torch.full((1, 1, 4, 4), -5.0, requires_grad=True)
    loss, stats = _loss(pos, neg, valid=torch.zeros(1, 1, 4, 4))
    loss.backward()
    assert "pos_score" not in stats
    assert pos.grad is None or not pos.grad.any()


def test_background_of_positive_crops_is_pushed_down_only_where_marked():
    pos = torch.full((1, 1, 4, 4), 2.0, requires_grad=True)
    neg = torch.full((1, 1, 4, 4), -5.0)
    background = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    background[0, 0, 3] = True
    background[0, 0, 2, 0] = True  # five positions
    loss, stats = _loss(pos, neg, valid=torch.zeros(1, 1, 4, 4), background=background)
    loss.backward()
    assert stats["bg_score"] > 0.8
    assert (pos.grad[background] > 0).all()
    assert not pos.grad[~background].any()
