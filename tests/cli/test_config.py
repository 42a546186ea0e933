from pathlib import Path

import pytest
import yaml

from selftaught.config import Config, ConfigError, load_config

RECIPES = sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml"))


def test_defaults_are_valid():
    config = Config()
    assert config.loop.iterations == 5 and config.train.steps_for(1) == 125
    assert [config.train.steps_for(n) for n in (1, 2, 3)] == [125, 150, 180]


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.name for r in RECIPES])
def test_every_shipped_recipe_loads_and_says_how_to_run(recipe):
    config = load_config(recipe)
    assert isinstance(config, Config)
    header = recipe.read_text().splitlines()[:6]
    assert any("selftaught run" in line for line in header if line.startswith("#"))


def test_smoke_recipe_exists():
    assert any("smoke" in r.name for r in RECIPES)


def test_dotted_overrides_are_typed(tmp_path):
    config = load_config(
        None,
        [
            "loop.iterations=3",
            "generation.temperature=0.7",
            "generation.num_samples=2",
            "loop.rationalization=false",
            "task.arithmetic.train_digits=[1, 2]",
        ],
    )
    assert config.loop.iterations == 3 and config.generation.temperature == 0.7
    assert config.loop.rationalization is False and config.task.arithmetic.train_digits == [1, 2]


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("loop.iteration=3", "did you mean 'iterations'"),
        ("trian.first_steps=3", "did you mean 'train'"),
        ("train.first_steps=-5", "train.first_steps must be >= 1"),
        ("loop.filter=rationale", "loop.filter must be one of"),
        ("train.precision=fp16", "train.precision must be one of"),
        ("loop.iterations=three", "loop.iterations must be int"),
        ("loop.iterations=true", "loop.iterations must be int"),
        ("generation.num_samples=4", "needs generation.temperature > 0"),
        ("train.steps_growth=0.5", "train.steps_growth must be >= 1"),
        ("loop", "must look like section.field=value"),
        ("loop.iterations=[", "not valid YAML"),
        ("model.base.hidden_size=130", "divisible"),
        ("task.arithmetic.train_digits=[0]", "digit counts"),
    ],
)
def test_bad_values_are_rejected_with_the_field_named(override, fragment):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(None, [override])
    assert fragment in str(info.value)


def test_bad_recipe_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loop:\n  iterations: [1\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+ is not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_resolved_config_round_trips():
    config = load_config(None, ["seed=7"])
    again = load_config(None, [])
    assert config != again
    from selftaught.config import config_from_dict

    assert config_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict()))) == config


def test_default_recipe_is_the_default_config():
    recipe = Path(__file__).parents[2] / "recipes" / "arithmetic.yaml"
    assert load_config(recipe) == Config()
