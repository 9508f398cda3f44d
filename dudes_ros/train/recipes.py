"""Find and load training recipes: a bundled name (``config/recipes/<name>.yaml`` in the share
folder) or a path to any YAML file."""

from __future__ import annotations

from pathlib import Path

from dudes_ros.config import ConfigError, load_config
from dudes_ros.resources import share_directory
from dudes_ros.train.config import Recipe


def recipes_directory() -> Path:
    return share_directory() / "config" / "recipes"


def available_recipes() -> list[str]:
    """Names of the bundled recipes."""
    return sorted(p.stem for p in recipes_directory().glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """The YAML file for a bundled recipe name or an explicit path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"recipe file {path} does not exist")
        return path
    bundled = recipes_directory() / f"{name_or_path}.yaml"
    if not bundled.is_file():
        raise ConfigError(f"unknown recipe {name_or_path!r}; bundled recipes are "
                          f"{available_recipes()} (in {recipes_directory()}), or pass a path "
                          "to a YAML file")
    return bundled


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A validated ``Recipe`` from a bundled name or a YAML path."""
    return load_config(Recipe, recipe_path(name_or_path))
