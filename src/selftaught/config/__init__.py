"""Run configuration: dataclasses with documented, validated fields.

A recipe is a YAML file whose keys mirror these dataclasses; ``--set loop.iterations=3`` overrides
one field (the value is parsed as YAML, so ``3``, ``0.5``, ``true`` and ``[1, 2]`` get their types).
Unknown keys are rejected with the closest valid name. Every check raises `ConfigError`, which the
CLI prints as one line with exit code 2. Each field's help text is data (``metadata["help"]``):
`describe_fields` lists them all, and ``selftaught config`` prints them.
"""

from selftaught.config.checks import ConfigError
from selftaught.config.fields import FieldHelp, describe_fields
from selftaught.config.loading import apply_override, config_from_dict, load_config, read_recipe, read_yaml_file
from selftaught.config.sections import (
    BaseModelConfig,
    Config,
    DistributedConfig,
    GenerationConfig,
    LoopConfig,
    LoraConfig,
    ModelConfig,
    TrainConfig,
    VerifierConfig,
)
from selftaught.config.task_sections import ArithmeticConfig, DataConfig, TaskConfig, WordProblemsConfig

__all__ = [
    "ArithmeticConfig", "BaseModelConfig", "Config", "ConfigError", "DataConfig", "DistributedConfig",
    "FieldHelp", "GenerationConfig", "LoopConfig", "LoraConfig", "ModelConfig", "TaskConfig", "TrainConfig",
    "VerifierConfig", "WordProblemsConfig", "apply_override", "config_from_dict", "describe_fields",
    "load_config", "read_recipe", "read_yaml_file",
]  # fmt: skip
