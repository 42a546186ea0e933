"""A clear stop when training diverges: a non-finite loss or weight ends the phase with one line.

Without it a run with a diverging learning rate finishes with exit 0, NaN weights and 0% accuracy,
and an M0 trained that way would be cached and reused by every later run.
"""

from __future__ import annotations

import math


class NonFiniteError(ValueError):
    """Training produced a NaN or infinite loss or weight; the message says where and what to change."""


def check_loss(loss: float | None, step: int, label: str) -> None:
    """Raise if the logged ``loss`` is NaN or infinite (None: nothing logged yet)."""
    if loss is not None and not math.isfinite(loss):
        raise NonFiniteError(
            f"{label}: the training loss is {loss} at step {step}; training diverged "
            "(lower train.learning_rate, or check train.weight_decay); nothing of this phase was kept"
        )


def check_weights(model, label: str) -> None:
    """Raise if any parameter of ``model`` holds a NaN or infinity."""
    import torch

    for name, param in model.named_parameters():
        if not torch.isfinite(param.detach()).all():
            raise NonFiniteError(
                f"{label}: weight {name} is not finite after training; training diverged "
                "(lower train.learning_rate, or check train.weight_decay); nothing of this phase was kept"
            )
