"""Profiles: what "embedded", "gemma", "paper" and "smoke" mean (``profiles.yaml``), and configs
from them, from YAML files and from overrides. Every error names the file or key to fix.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import yaml

from mwanda import data
from mwanda.core.config import ConfigError
from mwanda.core.models import ModelLoadError
from mwanda.study.config import TUPLE_FIELDS, ExperimentConfig, repo_first, validate

PROFILES_FILE = Path(__file__).with_name("profiles.yaml")


def profiles() -> dict[str, dict]:
    return yaml.safe_load(PROFILES_FILE.read_text(encoding="utf-8"))


def make_config(profile: str = "embedded", **overrides) -> ExperimentConfig:
    """A profile's settings with ``overrides``; unknown keys and values fail here, with the fix.

    ``profile`` names a profile of ``profiles.yaml`` or is a YAML file (``*.yaml``) that
    ``extends:`` one and overrides any keys: a mirror of the Hub, a cluster's paths, a test's
    stand-ins. Relative paths in it resolve like the built-in profiles' (repository root first).
    """
    base = _profile_values(profile)
    valid = {f.name for f in fields(ExperimentConfig)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ConfigError(f"unknown config key(s) {unknown}; valid keys: {', '.join(sorted(valid))}.")
    values = {**base, **overrides, "profile": profile}
    if values.get("calib_langs") in ("calib", "heldout"):
        values["calib_langs"] = data.languages(values["calib_langs"])
    for k in TUPLE_FIELDS:
        values[k] = _as_tuple(values.get(k))
    cfg = ExperimentConfig(**values)
    validate(cfg)
    return cfg


def _profile_values(profile: str) -> dict:
    """The settings of a built-in profile, or of a profile file over the profile it extends."""
    table = profiles()
    if isinstance(profile, str) and profile in table:
        return dict(table[profile])
    if not isinstance(profile, str) or Path(profile).suffix not in (".yaml", ".yml"):
        raise ConfigError(
            f"unknown profile {profile!r}; choose one of {', '.join(table)}, or a profile file "
            "(*.yaml) with `extends: <profile>`."
        )
    path = repo_first(profile, Path.is_file) or Path(profile)
    raw = read_yaml(path)
    parent = raw.pop("extends", None)
    if parent not in table:
        raise ConfigError(f"{path}: `extends: {parent}` must name one of the profiles {', '.join(table)}.")
    keys = {f.name for f in fields(ExperimentConfig)} - {"profile"}  # the file is the profile
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {unknown}; it holds `extends` and config keys.")
    return {**table[parent], **raw}


def _as_tuple(value: object) -> object:
    """A list (YAML, JSON) or one string as a tuple, nothing as (); any other value is left for
    ``check_types`` to report with the key's type, rather than split or failing here."""
    if value is None or value == []:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value) if isinstance(value, list) else value


def load_config(path: str | Path) -> ExperimentConfig:
    """A YAML config file: ``profile:`` plus any ExperimentConfig keys."""
    raw = read_yaml(path)
    with naming_file(path):
        return make_config(raw.pop("profile", "embedded"), **raw)


@contextlib.contextmanager
def naming_file(path: str | Path) -> Iterator[None]:
    """Prefix config and model errors raised inside with ``path``: the file the user must fix."""
    try:
        yield
    except (ConfigError, ModelLoadError) as err:
        raise type(err)(f"{path}: {err}") from None


def read_yaml(path: str | Path) -> dict:
    """The mapping in YAML file ``path``; syntax errors name the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; check the path.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(
            f"{_yaml_where(path, err)}: invalid YAML ({_yaml_problem(err)}); fix it there."
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must be a YAML mapping of config keys to values.")
    bad = [k for k in raw if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{path}: key(s) {bad} are not names; keys are config field names.")
    return raw


def _yaml_where(path: Path, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)


def _yaml_problem(err: yaml.YAMLError) -> str:
    parts = [getattr(err, "context", None), getattr(err, "problem", None)]
    return ": ".join(p for p in parts if p) or str(err).splitlines()[0]
