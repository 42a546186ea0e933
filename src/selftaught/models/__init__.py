"""Loading any causal LM (the embedded default or a Hugging Face model) with its position scheme.

A model folder written by selftaught holds either full weights or a PEFT adapter; an adapter folder
also records the base model it belongs to (``selftaught.json``), and is merged into the base weights on
load, since generation backends want plain weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from selftaught.common.versions import quiet_checkpointing_deprecation
from selftaught.config import ConfigError, ModelConfig
from selftaught.models import fp16_weights
from selftaught.models.embedded import load_meta, save_meta
from selftaught.models.positions import PositionScheme, make_scheme

# selftaught draws one bar per phase; transformers' bars for every load and save would interleave with it and
# turn a one-line error into several lines of stderr
hf_logging.disable_progress_bar()
# the Trainer warns "mtime may not be reliable" whenever two checkpoints are saved within a second (small
# models); the numeric order it falls back to is the right one
logging.getLogger("transformers.trainer_utils").setLevel(logging.ERROR)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PRECISION_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    scheme: PositionScheme
    chat: bool  # prompts go through the tokenizer's chat template
    system: str = ""  # model.system_prompt: a chat model's system message
    precision: str = ""  # what generation runs in (fp32, bf16, fp16-weights), set by `load_for_generation`

    def render(self, prompt: str) -> str:
        """The text the model sees for a task prompt (chat-wrapped for instruct models)."""
        return render_prompt(self.tokenizer, self.chat, prompt, self.system)

    @property
    def add_special_tokens(self) -> bool:
        return not self.chat  # a rendered chat template already holds its special tokens


def render_prompt(tokenizer, chat: bool, prompt: str, system: str = "") -> str:
    """A task prompt as the model sees it: as is for a completion model; else one user turn of the chat
    template, after a ``system`` message where one is given. Templates that refuse the system role
    (Gemma's raise) or drop it silently get it at the top of the user turn instead, so it is never lost."""
    if not chat:
        return prompt
    user = [{"role": "user", "content": prompt}]
    if system:
        try:
            text = tokenizer.apply_chat_template(
                [{"role": "system", "content": system}, *user], tokenize=False, add_generation_prompt=True
            )
        except Exception:  # jinja's TemplateError from the template's own raise_exception, or similar
            text = ""
        if system in text:
            return text
        user = [{"role": "user", "content": f"{system}\n\n{prompt}"}]
    return tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)


def pick_device(config: ModelConfig) -> str:
    if config.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device=cuda but no CUDA device is visible")
    return config.device


def pick_dtype(config: ModelConfig, device: str) -> torch.dtype:
    if config.dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return DTYPES[config.dtype]


def native_cpu_bf16() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX512-BF16 or AMX); without them, bf16 is
    emulated and slower than fp32. (torch's own probes; private, hence the guard.)"""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)


def generation_dtype(precision: str, config: ModelConfig) -> torch.dtype:
    """The weights' dtype for generation (``generation.precision``): ``auto`` is bf16 wherever the hardware
    computes it natively (a CUDA device under ``model.dtype=auto``, a CPU with AVX512-BF16 or AMX, where
    `load_for_generation` also asks for a model's size), else ``model.dtype``'s choice; ``fp16-weights``
    loads fp32 (and `load_for_generation` packs fp16 copies); a fine-tuned checkpoint is still trained and
    saved in fp32."""
    if precision in ("bf16", "fp32", "fp16-weights"):
        return torch.bfloat16 if precision == "bf16" else torch.float32
    device = pick_device(config)
    if config.dtype == "auto" and device == "cpu" and native_cpu_bf16():
        return torch.bfloat16
    return pick_dtype(config, device)


# Below this a CPU gains little from bf16 weights (they fit its caches) and may lose: the embedded 0.9M model's
# `eval` took 11.3 s in bf16 against 10.4 s in fp32; random Llamas of 7M / 42M / 162M decode 1.3x / 1.7x / 1.8x faster
MIN_BF16_CPU_PARAMETERS = 20_000_000


def load_for_generation(path: str | Path, config: ModelConfig, precision: str) -> LoadedModel:
    """`load_model` with weights in `generation_dtype`, or fp32 with fp16 copies (``fp16-weights``:
    `fp16_weights.pack`). ``auto`` (with ``model.dtype=auto``) on a CPU without native bf16 but with fbgemm
    (x86 AVX2) is ``fp16-weights``; either cheaper form is only for a model of `MIN_BF16_CPU_PARAMETERS` or
    more, a smaller one stays fp32. The size comes from the safetensors headers before loading, so the model
    is loaded once, in its dtype, as `from_pretrained` loads it (fp32 buffers such as rotary frequencies stay
    fp32); a size that cannot be read counts as large."""
    if precision == "fp16-weights" and not (fp16_weights.available() and pick_device(config) == "cpu"):
        raise ConfigError("generation.precision=fp16-weights needs a CPU with fbgemm (x86); use auto or fp32")
    dtype, packs = generation_dtype(precision, config), precision == "fp16-weights"
    if precision == config.dtype == "auto" and pick_device(config) == "cpu":
        packs = dtype == torch.float32 and fp16_weights.available()
        if dtype == torch.bfloat16 or packs:
            stored = stored_parameters(path)
            if stored is not None and stored < MIN_BF16_CPU_PARAMETERS:
                dtype, packs = torch.float32, False
    loaded = load_model(path, config, dtype)
    packs = packs and fp16_weights.pack(loaded.model) > 0  # none: every layer's weights past fp16's range
    loaded.precision = "fp16-weights" if packs else PRECISION_NAMES.get(dtype, str(dtype))
    return loaded


def stored_parameters(path: str | Path) -> int | None:
    """Parameters in a local model folder's safetensors files (an adapter folder's: its base model's),
    read from their headers; None where there are none to read (a hub id, other formats)."""
    from math import prod

    from safetensors import safe_open

    folder = Path(str(path))
    try:
        base = _adapter_base(folder) if folder.is_dir() else None
    except ValueError:
        return None
    folder = Path(base) if base else folder
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    total = 0
    for file in files:
        with safe_open(str(file), "pt") as handle:
            total += sum(prod(handle.get_slice(name).get_shape()) for name in handle.keys())
    return total or None


def _adapter_base(path: Path) -> str | None:
    if (path / "adapter_config.json").is_file():
        return load_meta(path).get("base_model") or json.loads((path / "adapter_config.json").read_text()).get(
            "base_model_name_or_path"
        )
    return None


def load_tokenizer(path: str | Path, config: ModelConfig):
    text = str(path)
    if (text.startswith(("/", ".", "~")) or text.count("/") > 1) and not Path(text).expanduser().exists():
        raise ConfigError(f"model path {text} does not exist")  # not a hub id either
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=config.trust_remote_code)
    except MemoryError:
        raise
    except Exception as err:  # a damaged folder fails in tokenizers' Rust code with a bare Exception
        raise ConfigError(f"cannot load the tokenizer of {path}: {_first_line(err)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return (lines[0][:300] if lines else "") or type(err).__name__


def use_chat(tokenizer, config: ModelConfig, path) -> bool:
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if config.chat_template == "on" and not has_template:
        raise ConfigError(f"model.chat_template=on but the tokenizer of {path} has no chat template")
    return config.chat_template == "on" or (config.chat_template == "auto" and has_template)


def load_model(path: str | Path, config: ModelConfig | None = None, dtype: torch.dtype | None = None) -> LoadedModel:
    """Model, tokenizer, position scheme and chat flag from a local folder or a hub id; ``dtype``
    overrides ``config.dtype``'s choice (generation picks its own, `generation_dtype`)."""
    config = config or ModelConfig()
    device = pick_device(config)
    local = Path(str(path))
    try:
        meta = load_meta(local) if local.is_dir() else {"positions": "sequential"}
        base = _adapter_base(local) if local.is_dir() else None
    except ValueError as err:
        raise ConfigError(f"cannot load model {path}: {_first_line(err)}") from None
    kwargs = {"dtype": dtype or pick_dtype(config, device), "trust_remote_code": config.trust_remote_code}
    tokenizer = load_tokenizer(path, config)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(base or path), **kwargs)
        if base is not None:
            from peft import PeftModel

            with quiet_checkpointing_deprecation():  # PEFT reads the attribute while wrapping
                model = PeftModel.from_pretrained(model, str(path)).merge_and_unload()
    except MemoryError:
        raise
    except Exception as err:  # garbage weights raise SafetensorError, RuntimeError (shapes), ...
        raise ConfigError(f"cannot load model {path}: {_first_line(err)}") from None
    bad = next((name for name, p in model.named_parameters() if not torch.isfinite(p).all()), None)
    if bad is not None:
        raise ConfigError(f"cannot use model {path}: weight {bad} holds NaN or infinite values")
    model.to(device).eval()
    scheme = make_scheme(meta["positions"], tokenizer)
    return LoadedModel(model, tokenizer, scheme, use_chat(tokenizer, config, path), config.system_prompt)


def save_model(model, tokenizer, scheme_name: str, path: str | Path, base_model: str | None = None) -> None:
    """Full weights (safetensors), or only the adapter for a PEFT model, plus tokenizer and meta."""
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    save_meta(path, scheme_name, base_model)
    adapter_config = Path(path) / "adapter_config.json"
    if base_model and adapter_config.is_file():  # PEFT records the path as the model was loaded (maybe relative)
        settings = json.loads(adapter_config.read_text())
        settings["base_model_name_or_path"] = str(base_model)
        adapter_config.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def scheme_name(scheme: PositionScheme) -> str:
    return scheme.name


def free_memory() -> None:
    """Hand freed tensors' memory back (PyTorch's caching allocator keeps GPU memory otherwise)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def absolute_model_path(name: str | Path) -> str:
    """An existing local path made absolute (resolvable from any directory); a hub id as is."""
    path = Path(str(name)).expanduser()
    return str(path.resolve()) if path.exists() else str(name)
