"""Lesson 03 exercises: region features from a conv feature map, and a confusion matrix."""

import torch

from . import Exercise, register


def feature_map_to_regions(fmap: torch.Tensor) -> torch.Tensor:
    """(B, d, h, w) -> (B, T = h·w, d): one feature vector per region, regions in row-major order."""
    return fmap.flatten(2).transpose(1, 2)  # (B, d, h, w) -> (B, d, T) -> (B, T, d)


def _regions_inputs(gen: torch.Generator):
    h, w = (int(v) for v in torch.randint(2, 5, (2,), generator=gen))
    return (torch.randn(3, 5, h, w, generator=gen),)


register(Exercise(
    id="03.feature_map_to_regions",
    prompt="Write feature_map_to_regions(fmap): turn a conv feature map (B, d, h, w) into region "
           "features e (B, h*w, d), regions in row-major order.",
    solution=feature_map_to_regions,
    make_inputs=_regions_inputs,
    hint="flatten the two spatial dims into one (B, d, T), then swap the last two dims; a plain "
         "reshape to (B, T, d) mixes channels and positions.",
))


def confusion_counts(labels: torch.Tensor, predictions: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts: entry [i, j] = how many images of true class i were predicted as j."""
    flat = labels * num_classes + predictions                      # (N,) one cell id per image
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def _confusion_inputs(gen: torch.Generator):
    num_classes = int(torch.randint(3, 7, (1,), generator=gen))
    labels = torch.randint(0, num_classes, (40,), generator=gen)
    noise = torch.randint(0, num_classes, (40,), generator=gen)
    keep = torch.rand(40, generator=gen) < 0.6                      # mostly right, some errors
    return labels, torch.where(keep, labels, noise), num_classes


register(Exercise(
    id="03.confusion_counts",
    prompt="Write confusion_counts(labels, predictions, num_classes): a (num_classes, num_classes) tensor whose entry "
           "[i, j] counts the images of true class i that were predicted as class j.",
    solution=confusion_counts,
    make_inputs=_confusion_inputs,
    hint="rows are the true classes and columns the predictions (not the other way round); "
         "the diagonal holds the correct answers.",
))
