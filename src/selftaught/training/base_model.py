"""The starting model M0 for the embedded default: trained here on short sums, cached by config hash.

It lives with training, not with models/: building M0 needs a task's data and the SFT loop, and
models/ is the layer both of those stand on.

M0 sees only 1..``max_digits``-digit additions with correct scratchpads. A share of them
(``hint_fraction``) use the hinted prompt, so that M0 knows what a hint is for and rationalization
has something to work with, exactly as the few-shot hinted prompt does for a large model.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from selftaught.common.atomic import atomic_save_dir
from selftaught.config import Config, TrainConfig
from selftaught.models import save_model
from selftaught.models.embedded import build_char_tokenizer, build_tiny_llama
from selftaught.models.gguf import ensure_converted, is_gguf
from selftaught.models.positions import make_scheme
from selftaught.tasks.arithmetic import ArithmeticTask, sample_pairs
from selftaught.tasks.base import EMBEDDED_ARITHMETIC, EMBEDDED_TEXT, Example, embedded_base
from selftaught.training.finite import check_loss, check_weights
from selftaught.training.sft import SftJob, encode_pairs, train_sft

CACHE_VERSION = 1  # bump when M0's recipe changes in a way the config does not show


def base_key(config: Config) -> str:
    """Hash of everything that decides M0's weights."""
    base = {k: v for k, v in config.to_dict()["model"]["base"].items() if k != "cache_dir"}
    fingerprint = {
        "base": base,
        "format": config.task.arithmetic.format,
        "test_digits": config.task.arithmetic.test_digits,
        "test_per_digit": config.task.arithmetic.test_per_digit,
        "seed": config.seed,
        "version": CACHE_VERSION,
    }
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def base_training_pairs(config: Config, task: ArithmeticTask) -> list[tuple[str, str]]:
    """(prompt, scratchpad) pairs of 1..max_digits digits, none of them a test question."""
    c = config.model.base
    rng = random.Random(f"base-{config.seed}")
    held_out = task.held_out_pairs()
    count = c.steps * c.batch_size
    pairs = []
    for k in range(count):
        n = rng.randint(1, c.max_digits)
        a, b = sample_pairs(n, 1, rng, held_out)[0]
        example = Example(f"base-{k}", f"{a}+{b}", str(int(a) + int(b)))
        hinted = rng.random() < c.hint_fraction
        pairs.append((task.prompt(example, hint=hinted), task.gold_completion(example)))
    return pairs


def ensure_base_model(config: Config, task, reporter) -> Path | str:
    """Path of M0: the cached embedded model (trained now if missing) or the configured model."""
    m = config.model
    if is_gguf(m.name_or_path, m.gguf_file):
        return ensure_converted(m.name_or_path, m.gguf_file, m.base.cache_dir)
    if m.name_or_path != "embedded":
        return m.name_or_path
    kind = embedded_base(task)
    if kind == EMBEDDED_TEXT:
        from selftaught.training.text_base_model import pretrain_text_model, text_base_key

        path, train = Path(config.model.base.cache_dir) / f"text-{text_base_key(config)}", pretrain_text_model
    elif kind == EMBEDDED_ARITHMETIC:
        path, train = Path(config.model.base.cache_dir) / base_key(config), _train_arithmetic_model
    else:
        raise ValueError(
            "model.name_or_path=embedded is built for task.name=arithmetic or word_problems; "
            "set a real model for other tasks"
        )
    if (path / "config.json").is_file():
        return path
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return _train_alone(config, path, reporter)
    train(config, task, path, reporter)
    return path


def _train_arithmetic_model(config: Config, task: ArithmeticTask, path: Path, reporter) -> None:
    c = config.model.base
    tokenizer = build_char_tokenizer()
    scheme = make_scheme(c.positions, tokenizer)
    model = build_tiny_llama(tokenizer, c.num_layers, c.hidden_size, c.num_heads, 512, config.seed)
    features = encode_pairs(
        tokenizer, scheme, base_training_pairs(config, task), max_period=c.max_period, seed=config.seed
    )
    train_and_cache(model, tokenizer, features, config, path, c.positions, reporter, "base model M0: train")


def train_and_cache(
    model, tokenizer, features: list[dict], config: Config, path: Path, positions: str, reporter, label: str,
    max_length: int = 2048, packing: bool | None = None,
) -> None:  # fmt: skip
    """Train M0 with ``model.base``'s settings and save it at ``path`` (the cache); its checkpoints go beside it.

    ``packing`` overrides ``train.packing`` (rows already of one length need none)."""
    c = config.model.base

    def on_step(step: int, loss: float | None) -> None:
        check_loss(loss, step, label)
        advance(1)

    settings = TrainConfig(
        batch_size=c.batch_size,
        learning_rate=c.learning_rate,
        save_every_steps=max(config.train.save_every_steps, c.steps // 10),  # M0: ~10 checkpoints
        packing=config.train.packing if packing is None else packing,
        max_length=max_length,
        precision="fp32",  # M0 is cached by model.base alone: the same weights whatever CPU trained it
    )
    scratch = path.parent / f".trainer-{path.name}"
    with reporter.phase(label, total=c.steps) as advance:
        job = SftJob(scratch, c.steps, settings, config.seed)
        train_sft(model, features, tokenizer.pad_token_id, job, on_step=on_step)
    check_weights(model, label)  # a diverged M0 must not be cached for every later run
    atomic_save_dir(path, lambda tmp: save_model(model, tokenizer, positions, tmp))
    shutil.rmtree(scratch, ignore_errors=True)


def _train_alone(config: Config, path: Path, reporter) -> Path:
    """Rank 0 of a multi-process launch: train M0 in a process of its own, outside the launch.

    In this process the Trainer would join the launch's process group and wait for ranks that are
    waiting for a training job of the loop, not for M0.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCH_ENV and not k.startswith(("TORCHELASTIC_", "ACCELERATE_"))
    }
    reporter.log("base model M0: training it in a separate process (this is a multi-process launch)")
    command = [sys.executable, "-m", "selftaught.training.base_model"]
    subprocess.run(command, input=json.dumps(config.to_dict()), text=True, env=env, check=True)
    return path


LAUNCH_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
              "ROLE_RANK", "ROLE_WORLD_SIZE", "ROLE_NAME", "MASTER_ADDR", "MASTER_PORT")  # fmt: skip


if __name__ == "__main__":  # `_train_alone`'s process: the config as JSON on stdin
    from selftaught.common.ui import SILENT
    from selftaught.config import config_from_dict
    from selftaught.tasks import make_task

    settings = config_from_dict(json.loads(sys.stdin.read()))
    ensure_base_model(settings, make_task(settings), SILENT)
