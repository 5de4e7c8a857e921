"""Per-epoch checkpoints, so a killed run continues from its last finished epoch.

At the end of every epoch the fold's whole training state is written atomically to
`seed<s>/fold<k>/checkpoint.pt`: weights, optimizer, schedule, grad scaler, the shuffling
generator, torch's RNG states, the best epoch's weights so far and the history. Restoring all of
it makes a resumed run on the CPU continue bit for bit as if it had never stopped. The file is
removed once the fold is done (its best weights stay in weights.pt).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from .. import fileio

FORMAT = 1


class EpochCheckpoint:
    def __init__(self, path: Path, key: str):
        self.path = Path(path)
        self.key = key  # the recipe hash: a checkpoint of another recipe is never resumed

    def load(self) -> dict | None:
        """The saved state, or None when there is none, it belongs to another recipe, or it is damaged."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception:  # a damaged checkpoint is a cache miss, not an error: the epoch reruns
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("key") != self.key:
            return None
        return state

    def save(self, state: dict) -> None:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, "key": self.key, **state}, buffer)
        fileio.write_bytes(self.path, buffer.getvalue())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
