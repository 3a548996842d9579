"""A run's requested settings, from a YAML/TOML file, flags or a dict.

:class:`Config`'s fields, types, defaults and single-value checks all come from the
settings table (:mod:`tsne_dist.settings`); this module adds the rules that tie
settings together and the reading of config files. A Config holds what the user
asked for; what a run resolves it to (engine, kNN backend, k, learning rate) is the
run plan's (:mod:`tsne_dist.pipeline.plan`), stored beside it.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import field, fields, make_dataclass
from typing import Any

import yaml

from .errors import ConfigError
from .storage import redact
from .settings import SETTINGS, canonical_name, check_schedule, coerce, neighbours_for

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml")

SOURCE_SETTINGS = tuple(setting.name for setting in SETTINGS if setting.kind == "source")


class _ConfigMethods:
    """Methods of :class:`Config` (its fields come from the settings table)."""

    @property
    def k(self) -> int:
        """Neighbours per item: ``n_neighbors`` or ``3 * perplexity``."""
        return neighbours_for(self.perplexity, self.n_neighbors)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the settings (JSON-serialisable; in-memory data is described, credentials
        in ``storage_options`` hidden)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in SOURCE_SETTINGS:
            if values[key] is not None and not isinstance(values[key], str):
                values[key] = f"in-memory {type(values[key]).__name__} {tuple(getattr(values[key], 'shape', ()))}"
        values["storage_options"] = redact(values["storage_options"])
        return values

    def validate(self):
        """Coerce every setting to its type, check it and the rules between settings.

        Returns
        -------
        Config
            ``self``, with typed values.

        Raises
        ------
        ConfigError
            On the first bad setting.
        """
        for setting in SETTINGS:
            if setting.kind != "source":
                setattr(self, setting.name, coerce(setting, getattr(self, setting.name)))
        if not self.out:
            raise ConfigError("no output folder given", "set `out` to a folder")
        if self.vectors is None and self.interactions is None:
            raise ConfigError("no input given", "set `vectors` or `interactions` (or set it in the config file)")
        if self.vectors is not None and self.interactions is not None:
            raise ConfigError("both vectors and interactions given", "pass only one of `vectors` and `interactions`")
        check_schedule(self.n_iter, self.early_exaggeration_iter)
        if self.affinity_neighbors is not None and self.affinity_neighbors > self.k:
            raise ConfigError(f"affinity_neighbors {self.affinity_neighbors} exceeds the {self.k} neighbours "
                              "searched", "set `affinity_neighbors` to at most `n_neighbors`")
        if self.interactions is not None:
            if self.tau is not None and self.time_col is None:
                raise ConfigError("tau needs a timestamp column", "set `time_col`, or drop `tau`")
            if self.ids is not None:
                raise ConfigError("ids cannot be given with interactions (item ids come from the table)",
                                  "drop `ids`")
        return self


Config = make_dataclass(
    "Config",
    [(setting.name, Any, field(default=setting.default)) for setting in SETTINGS],
    bases=(_ConfigMethods,),
)
Config.__module__ = __name__
Config.__doc__ = "Everything a run needs (defaults follow openTSNE's).\n\nParameters\n----------\n" + "".join(
    f"{setting.name} : {setting.kind}, default {setting.shown_default}\n    {setting.help}\n" for setting in SETTINGS)


def read_config_file(path: str) -> dict[str, Any]:
    """Read settings from a YAML (.yaml/.yml) or TOML (.toml) file.

    Parameters
    ----------
    path : str
        Local path of the file.

    Returns
    -------
    dict
        Setting name -> value; dashes in names become underscores, aliases resolve.
        Relative paths of inputs and ``out`` are resolved against the config
        file's folder (not the current directory), so a config file works from
        anywhere; URLs and absolute paths are kept.

    Raises
    ------
    ConfigError
        When the file is missing, cannot be parsed or holds no mapping.
    """
    if not os.path.isfile(path):
        raise ConfigError(f"config file {path} does not exist", "check the path")
    if not path.endswith(CONFIG_SUFFIXES):
        raise ConfigError(f"{path} was given as the config file, which must end in {', '.join(CONFIG_SUFFIXES)}",
                          "pass data with `vectors` or `interactions`, or rename the config file")
    try:
        with open(path, "rb") as handle:
            if path.endswith(".toml"):
                raw = tomllib.load(handle)
            else:
                raw = yaml.safe_load(handle) or {}
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first_line = str(exc).splitlines()[0]
        raise ConfigError(f"config file {path} cannot be parsed: {first_line}", "fix its syntax") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    values = {canonical_name(str(key)): value for key, value in raw.items()}
    for key in values:
        _check_known(key, f" in {os.path.basename(path)}")
    folder = os.path.dirname(os.path.abspath(path))
    for key in (*SOURCE_SETTINGS, "out", "init_from"):
        value = values.get(key)
        if isinstance(value, str) and "://" not in value and not os.path.isabs(os.path.expanduser(value)):
            values[key] = os.path.join(folder, value)
    return values


def build_config(file_values: dict[str, Any] | None = None, **overrides: Any) -> Config:
    """Merge file settings with overrides (non-None wins) into a validated Config.

    Parameters
    ----------
    file_values : dict, optional
        Settings read from a config file.
    **overrides
        Settings from flags or code; ``None`` means "not given".

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        For an unknown setting or a bad value.
    """
    merged: dict[str, Any] = {}
    for source in (file_values or {}, overrides):
        for key, value in source.items():
            key = canonical_name(key)
            if value is None:
                continue
            _check_known(key)
            merged[key] = value
    return Config(**merged).validate()


def _check_known(key: str, where: str = "") -> None:
    """Raise :class:`ConfigError` for a setting name that does not exist, suggesting the closest."""
    known = sorted(f.name for f in fields(Config))
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        raise ConfigError(f"unknown setting {key!r}{where}", f"did you mean {close[0]!r}?" if close
                          else f"known settings are: {', '.join(known)}")
