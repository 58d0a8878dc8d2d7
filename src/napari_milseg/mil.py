"""Multiple-instance learning with hard-instance mining.

An image crop is scored densely by the fully convolutional network: every
output position is an instance. Small square windows of that score map,
about two cell diameters wide, are the bags. As in the method this plugin
follows, each positive bag contributes its top-scoring instance(s) as
positives and each negative bag its top five as hard negatives; the loss
sees only those, so the network is pushed to find *some* cell in every
small positive window and *nothing* anywhere in background. Negative bags
come from background-only images and from the surely-empty background of
the positive images themselves (see :func:`mil_loss`).

Selection and training happen in the same forward pass: the top-k is taken
on the current scores, which is the per-round mining of the method done
every step.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def bag_windows(scores: torch.Tensor, bag: int, stride: int) -> torch.Tensor:
    """Cut a score map into (overlapping) square bags.

    Parameters
    ----------
    scores : torch.Tensor, shape (N, 1, h, w)
        Instance logits (or any per-instance map).
    bag : int
        Bag side in output positions.
    stride : int
        Step between bags in output positions.

    Returns
    -------
    torch.Tensor, shape (N, B, bag * bag)
        The instances of each bag.
    """
    n = scores.shape[0]
    windows = scores.unfold(2, bag, stride).unfold(3, bag, stride)
    return windows.reshape(n, -1, bag * bag)


def mil_loss(
    positive_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    positive_valid: torch.Tensor,
    positive_background: torch.Tensor,
    bag: int,
    stride: int,
    pos_top_k: int = 1,
    neg_top_k: int = 5,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Binary cross-entropy on the mined instances of positive and negative bags.

    Parameters
    ----------
    positive_scores, negative_scores : torch.Tensor, shape (N, 1, h, w)
        Instance logits of positive and of negative crops.
    positive_valid : torch.Tensor, shape (N, 1, h, w), float in [0, 1]
        Share of each output position covered by the rough foreground
        estimate; bags with almost none are not used as positives (a small
        window of a sparse smear may hold no cell at all).
    positive_background : torch.Tensor, shape (N, 1, h, w), bool
        Positions of the positive crops that are surely background (far from
        anything the foreground estimate found). Together they form one more
        negative bag per crop: real background seen *with cells in view*,
        which synthetic negatives cannot show. Without it a network whose
        receptive field spans the crop learns "cells nearby" instead of "cell
        here", and scores all background of a positive image high.
    bag, stride : int
        Bag side and step, in output positions.
    pos_top_k, neg_top_k : int
        Instances mined per positive and per negative bag.

    Returns
    -------
    loss : torch.Tensor
        Scalar.
    stats : dict
        Mean probability of the mined instances: ``pos_score`` (positive
        bags), ``neg_score`` (negative bags), ``bg_score`` (background of
        positive crops).
    """
    pos = bag_windows(positive_scores, bag, stride)
    cover = bag_windows(positive_valid, bag, stride).mean(dim=-1)
    top_pos = pos.topk(min(pos_top_k, pos.shape[-1]), dim=-1).values  # (N, B, k)
    keep = (cover >= 0.1).unsqueeze(-1).expand_as(top_pos)
    neg = bag_windows(negative_scores, bag, stride)
    top_neg = neg.topk(min(neg_top_k, neg.shape[-1]), dim=-1).values
    loss = F.binary_cross_entropy_with_logits(top_neg, torch.zeros_like(top_neg))
    stats = {"neg_score": float(torch.sigmoid(top_neg.detach()).mean())}
    if keep.any():
        chosen = top_pos[keep]
        loss = loss + F.binary_cross_entropy_with_logits(chosen, torch.ones_like(chosen))
        stats["pos_score"] = float(torch.sigmoid(chosen.detach()).mean())
    background = positive_background.flatten(1)
    has_background = background.sum(dim=1) >= neg_top_k
    if has_background.any():
        scores = positive_scores.flatten(1)[has_background]
        scores = scores.masked_fill(~background[has_background], float("-inf"))
        top_bg = scores.topk(neg_top_k, dim=1).values
        loss = loss + F.binary_cross_entropy_with_logits(top_bg, torch.zeros_like(top_bg))
        stats["bg_score"] = float(torch.sigmoid(top_bg.detach()).mean())
    return loss, stats
