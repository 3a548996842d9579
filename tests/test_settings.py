"""One settings table: Config, the CLI flags, --help, config-file keys and the README all come from it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

import tsne_dist
from tsne_dist.cli import build_parser
from tsne_dist.config import Config, build_config, read_config_file
from tsne_dist.errors import ConfigError
from tsne_dist.settings import KINDS, SETTINGS, coerce, flag_text, readme_table
from conftest import run_cli

README = Path(__file__).resolve().parents[1] / "README.md"


def _run_parser():
    parser = build_parser()
    subparsers = next(action for action in parser._actions if action.dest == "command")
    return subparsers.choices["run"]


def test_config_fields_are_the_table():
    assert [field.name for field in dataclasses.fields(Config)] == [setting.name for setting in SETTINGS]
    defaults = Config()
    for setting in SETTINGS:
        assert getattr(defaults, setting.name) == setting.default, setting.name


def test_cli_flags_and_help_come_from_the_table(capsys):
    run = _run_parser()
    flags = {option: action.dest for action in run._actions for option in action.option_strings}
    for setting in SETTINGS:
        assert flags[setting.cli_flag] == setting.name
    assert set(flags) - {setting.cli_flag for setting in SETTINGS} == {"-h", "--help", "-q", "--quiet", "-v",
                                                                      "--verbose", "--dry-run"}
    args = run.parse_args(["--n-neighbors", "12", "--init", "random", "--overwrite"])
    assert (args.n_neighbors, args.initialization, args.overwrite, args.perplexity) == ("12", "random", True, None)
    text = " ".join(run.format_help().split())
    for setting in SETTINGS:
        assert " ".join(flag_text(setting.help_line).split()) in text, setting.name
    assert "default: 750" in text and "default: 3 x perplexity" in text and "auto | numpy | cupy | opentsne" in text
    assert {setting.kind for setting in SETTINGS} <= set(KINDS)


def test_config_file_keys_are_the_table(tmp_path):
    lines = [f"{setting.name.replace('_', '-') if i % 2 else setting.name}: {setting.default}"
             for i, setting in enumerate(SETTINGS) if setting.default is not None and setting.kind != "source"]
    path = tmp_path / "all.yaml"
    path.write_text("\n".join(lines + ["out: o", "vectors: v.npy", "init: random", "random_state: 3"]) + "\n")
    values = read_config_file(str(path))
    assert set(values) <= {setting.name for setting in SETTINGS}
    config = build_config(values)
    assert (config.initialization, config.seed, config.n_iter, config.learning_rate) == ("random", 3, 750, "auto")
    with pytest.raises(ConfigError, match="unknown setting 'n_iters'; did you mean 'n_iter'"):
        build_config({"n_iters": 3, "out": "o", "vectors": "v.npy"})
    with pytest.raises(ConfigError, match="unknown setting 'zzz'; known settings are: .*n_iter"):
        build_config({"zzz": 3, "out": "o", "vectors": "v.npy"})


def test_readme_settings_table_is_generated_from_the_table():
    text = README.read_text()
    start = text.index("<!-- settings-table")
    body = text[text.index("\n", start) + 1:text.index("<!-- end of settings-table -->")].strip()
    assert body == readme_table()
    for setting in SETTINGS:
        assert f"| `{setting.cli_flag}` | `{setting.name}` |" in body


@pytest.mark.parametrize("name, value, expected", [
    ("perplexity", "12.5", 12.5), ("n_iter", "300", 300), ("n_iter", 300.0, 300), ("overwrite", "yes", True),
    ("learning_rate", "auto", "auto"), ("learning_rate", "200", 200.0), ("knn", "bruteforce", "bruteforce"),
    ("seed", 2**32 - 1, 2**32 - 1), ("n_jobs", -1, -1), ("n_neighbors", None, None), ("tau", "3600", 3600.0),
])
def test_values_are_coerced_to_their_type(name, value, expected):
    setting = next(setting for setting in SETTINGS if setting.name == name)
    assert coerce(setting, value) == expected
    assert type(coerce(setting, value)) is type(expected)


@pytest.mark.parametrize("name, value, message", [
    ("perplexity", "abc", "perplexity must be a number, got 'abc'"),
    ("perplexity", 0, "perplexity must be positive, got 0.0"),
    ("perplexity", "inf", "perplexity must be a finite number"),
    ("n_iter", 7.5, "n_iter must be a whole number, got 7.5"),
    ("n_iter", True, "n_iter must be a whole number, got True"),
    ("n_neighbors", 1, "n_neighbors must be at least 2, got 1"),
    ("knn", "annoy", "knn must be one of auto, hnsw, pynndescent, bruteforce, cuml, got 'annoy'"),
    ("metric", "dot", "metric must be one of euclidean, cosine, inner_product"),
    ("similarity", "euclid", "similarity must be one of count, jaccard"),
    ("seed", -1, "seed must be between 0 and 4294967295"),
    ("seed", 2**32, "seed must be between 0 and 4294967295"),
    ("n_jobs", 0, "n_jobs must not be 0"),
    ("n_jobs", -2, "n_jobs must be at least -1"),
    ("learning_rate", "fast", "learning_rate must be a number or 'auto'"),
    ("learning_rate", -5, "learning_rate must be a positive number or 'auto'"),
    ("overwrite", "maybe", "overwrite must be true or false"),
    ("cluster", "http://x:1", "cluster must be 'local', 'local-cuda', 'kubernetes' or tcp://HOST:PORT"),
    ("id_col", 5, "id_col must be text, got 5"),
    ("perplexity", None, "perplexity must be set (default 30)"),
    ("metrics_sample", 9, "metrics_sample must be at least 10"),
])
def test_bad_values_are_refused_naming_the_setting(name, value, message):
    setting = next(setting for setting in SETTINGS if setting.name == name)
    with pytest.raises(ConfigError) as caught:
        coerce(setting, value)
    assert message in str(caught.value)
    assert "--" not in str(caught.value)  # library errors name parameters, not flags


def test_rules_between_settings():
    base = {"out": "o", "vectors": "v.npy"}
    with pytest.raises(ConfigError, match=r"early_exaggeration_iter \(300\) exceeds n_iter \(200\)"):
        build_config(base, n_iter=200, early_exaggeration_iter=300)
    with pytest.raises(ConfigError, match="only one of `vectors` and `interactions`"):
        build_config(base, interactions="log.csv")
    with pytest.raises(ConfigError, match="tau needs a timestamp column"):
        build_config({"out": "o", "interactions": "log.csv", "tau": 10})
    with pytest.raises(ConfigError, match="no output folder given"):
        build_config({"vectors": "v.npy"})
    assert build_config(base, perplexity=10).k == 30 and build_config(base, n_neighbors=7).k == 7


def test_the_cli_names_flags_and_the_python_api_names_parameters(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", "--vectors", "v.npy", "--out", str(tmp_path / "o"),
                           "--n-iter", "100", "--early-exaggeration-iter", "200")
    assert code == 2
    assert "lower --early-exaggeration-iter or raise --n-iter" in err
    with pytest.raises(ConfigError) as caught:
        tsne_dist.TSNE(n_iter=100, early_exaggeration_iter=200).fit(np.zeros((50, 3)))
    assert "lower `early_exaggeration_iter` or raise `n_iter`" in str(caught.value)
    with pytest.raises(ConfigError, match="random_state must be between 0 and 4294967295"):
        tsne_dist.TSNE(random_state=-3).fit(np.zeros((50, 3)))
    assert flag_text("set `initialization` or `n_neighbors`; `not_a_setting` stays") == \
        "set --init or --n-neighbors; `not_a_setting` stays"
