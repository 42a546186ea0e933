"""selftaught: STaR, the Self-Taught Reasoner (Zelikman et al. 2022), for Hugging Face models."""

from selftaught.config import Config, ConfigError, load_config
from selftaught.loop import run_star

__all__ = ["Config", "ConfigError", "load_config", "run_star"]
__version__ = "0.1.0"
