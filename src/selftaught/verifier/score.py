"""The verifier's score of a solution: DPO's implicit reward of the response alone.

V-STaR (Sec. 3) scores a candidate ``y`` for question ``x`` with the trained DPO verifier as
``beta * (log pi_verifier(y | x) - log pi_reference(y | x))``: only the response's tokens count, the
question is only conditioned on. (Scoring ``log p(x, y)``, as one public re-implementation does, adds the
question's own likelihood, the same for every candidate of a question but not across questions, and
rewards short solutions: the length and prompt bias the paper's definition avoids.) The reference is the
model the verifier was trained from, recorded in the checkpoint's ``verifier.json``.

Training and scoring tokenize a pair the same way (`training.preference.encode_response`), so the tokens
scored are the tokens trained on: the prompt and the response apart, joined, with the tokenizer's EOS after
the response (the DPO trainer appends it too, and a stopped solution ends there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from selftaught.models import LoadedModel, free_memory, load_model
from selftaught.training.preference import encode_response, padded_batch

INFO_FILE = "verifier.json"


class VerifierError(ValueError):
    """A verifier cannot be trained or used as asked; the message names the file or setting (CLI: exit 2)."""


@dataclass(frozen=True)
class VerifierInfo:
    """What scoring needs to know about a trained verifier (``verifier.json`` in its checkpoint)."""

    reference: str  # the model it was trained from: the log-ratio's denominator (absolute path or hub id)
    beta: float  # DPO's beta: the score is beta * log-ratio (ranking does not depend on it)
    few_shot: bool  # its prompts carry the task's few-shot prefix
    task: str  # the task whose pairs trained it
    score: str = "dpo_implicit_reward"

    def save(self, folder: str | Path) -> None:
        (Path(folder) / INFO_FILE).write_text(json.dumps(self.__dict__, indent=2) + "\n")

    @staticmethod
    def load(folder: str | Path) -> VerifierInfo:
        path = Path(folder) / INFO_FILE
        if not path.is_file():
            raise VerifierError(
                f"{path} does not exist: {folder} is not a verifier checkpoint "
                "(train one with `selftaught verifier train RUN`, or name RUN/verifier/checkpoint)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return VerifierInfo(**data)
        except (ValueError, TypeError) as err:
            raise VerifierError(f"{path}: not a verifier record ({str(err).splitlines()[0]})") from None


@torch.no_grad()
def response_logprobs(lm: LoadedModel, encoded: list[tuple[list[int], list[int]]], batch_size: int = 8) -> list[float]:
    """Sum of log p(response token | everything before it) for each (prompt ids, response ids)."""
    model = lm.model
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(encoded), batch_size):
        part = encoded[start : start + batch_size]
        batch = padded_batch([p + r for p, r in part], lm.tokenizer.pad_token_id, lm.scheme)
        logits = model(**{k: v.to(device) for k, v in batch.items()}, use_cache=False).logits
        for row, (prompt, response) in enumerate(part):
            if not response:
                out.append(0.0)
                continue
            # the logits at position t predict token t + 1: the response's tokens are predicted from
            # len(prompt) - 1 on; only those rows of the vocabulary-wide matrix are normalised
            first = len(prompt) - 1
            predicting = logits[row, first : first + len(response)].float().log_softmax(-1)
            targets = torch.tensor(response, device=predicting.device)
            out.append(predicting.gather(-1, targets[:, None]).sum().item())
    return out


class Scorer:
    """A trained verifier and its reference model, loaded once; `score` ranks solutions of questions."""

    def __init__(self, verifier_path: str | Path, model_config, max_length: int = 1024, batch_size: int = 8):
        self.info = VerifierInfo.load(verifier_path)
        self.verifier = load_model(verifier_path, model_config)
        self.reference = load_model(self.info.reference, model_config)
        self.max_length, self.batch_size = max_length, batch_size

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        """beta * (log pi_verifier - log pi_reference) of each response given its task prompt."""
        encoded = [encode_response(self.verifier, p, r, self.max_length) for p, r in zip(prompts, responses)]
        mine = response_logprobs(self.verifier, encoded, self.batch_size)
        theirs = response_logprobs(self.reference, encoded, self.batch_size)
        return [self.info.beta * (a - b) for a, b in zip(mine, theirs)]

    def release(self) -> None:
        del self.verifier, self.reference
        free_memory()
