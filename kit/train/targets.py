"""Per-row targets from a teacher: pseudo-labelled rows and distillation, in the one training loop.

A student's training rows carry more than a label: the target it is trained toward (one-hot for a
true label; the teacher's top class or its probabilities for a pseudo-labelled test image), the
teacher's probabilities for the distillation term, and a loss weight (a pseudo-label counts less
than a true label when the recipe says so). They are packed into one float32 row per image,

    [ target (C) | teacher (C) | weight (1) ]

so that every batch class (resident, gathered, albumentations workers) carries them exactly as it
carries integer labels: gathered by row. The loop tells them apart by dtype: integer labels take
the plain cross entropy, a float row takes TeacherLoss. Mixup and CutMix mix packed rows linearly
(BatchMixer), which is what mixing does to each of the three parts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def pack_targets(target: np.ndarray, teacher: np.ndarray | None, weight: np.ndarray) -> np.ndarray:
    """rows x (2C + 1) float32: target probabilities, teacher probabilities (the target's where there is
    no teacher: the distillation term then has nothing to add), loss weight."""
    target = np.asarray(target, dtype=np.float32)
    teacher = target if teacher is None else np.asarray(teacher, dtype=np.float32)
    weight = np.asarray(weight, dtype=np.float32).reshape(-1, 1)
    if not (len(target) == len(teacher) == len(weight)) or target.shape != teacher.shape:
        raise ValueError(f"targets {target.shape}, teacher {teacher.shape} and weights {weight.shape} do not line up")
    return np.concatenate([target, teacher, weight], axis=1)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)] = 1.0
    return out


def is_packed(y: torch.Tensor) -> bool:
    return y.is_floating_point()


def packed_labels(packed: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class each packed row is trained toward (its target's top class), for training accuracy."""
    return packed[:, :num_classes].argmax(1)


class TeacherLoss:
    """Per row: weight * ((1 - a) * cross_entropy(target, student) + a * T^2 * KL(teacher_T || student_T)),
    averaged over the batch's rows.

    a is the distillation weight (0: none); teacher_T is the teacher's probabilities softened by the
    temperature T (p ** (1/T), renormalised: softmax(log p / T)), student_T the student's logits over T;
    T^2 keeps the term's gradients at the scale of the cross entropy's whatever T (Hinton et al., 2015).
    Label smoothing applies to the cross entropy's target, as F.cross_entropy's does."""

    def __init__(self, num_classes: int, distill_weight: float = 0.0, temperature: float = 1.0,
                 label_smoothing: float = 0.0):
        self.num_classes = num_classes
        self.distill_weight, self.temperature, self.label_smoothing = distill_weight, temperature, label_smoothing

    def __call__(self, logits: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
        c = self.num_classes
        logits = logits.float()
        target, teacher, weight = packed[:, :c], packed[:, c:2 * c], packed[:, 2 * c]
        if self.label_smoothing:
            target = target * (1 - self.label_smoothing) + self.label_smoothing / c
        loss = -(target * F.log_softmax(logits, dim=1)).sum(1)
        if self.distill_weight:
            t = self.temperature
            soft = F.log_softmax(torch.log(teacher.clamp_min(1e-8)) / t, dim=1)
            kl = (soft.exp() * (soft - F.log_softmax(logits / t, dim=1))).sum(1) * t * t
            loss = (1 - self.distill_weight) * loss + self.distill_weight * kl
        return (weight * loss).mean()
