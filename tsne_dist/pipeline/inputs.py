"""Reading a run's inputs for the pipeline: vectors with ids, and the metadata table."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..config import Config
from ..errors import ConfigError
from ..io.sources import source_name
from ..io.tables import check_columns, check_ids, join_metadata, read_ids, read_table
from ..io.vectors import check_vectors, read_vectors, vector_columns


def read_vector_inputs(config: Config, *, require_ids: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The checked (N, D) float32 vectors and their N ids (row numbers when none are given);
    nothing is written.

    Raises
    ------
    InputError
        For unreadable or invalid vectors or ids.
    ConfigError
        With ``require_ids``, when neither `ids` nor an id column of the vectors file gives them.
    """
    raw, file_ids = read_vectors(config.vectors, config.vector_col, config.id_col, config.vector_cols)
    if require_ids and config.ids is None and file_ids is None:
        raise ConfigError(f"the vectors in {source_name(config.vectors)} carry no ids (they would be numbered 0, 1, "
                          "... like the rows of any other file)",
                          "pass the items' ids with `ids`, or name the id column of a Parquet/CSV file with `id_col`")
    vectors = check_vectors(raw, source_name(config.vectors))
    ids_source = config.ids if config.ids is not None else config.vectors
    ids = check_ids(read_ids(config.ids, config.id_col) if config.ids is not None else file_ids, len(vectors),
                    source_name(ids_source))
    return vectors, ids


def metadata_table(config: Config) -> pd.DataFrame | None:
    """The metadata table with its id column and requested columns checked (not yet joined).

    Raises
    ------
    ConfigError
        When the id column or a requested column (``color_by``, ``label``) is missing.
    """
    requested = {"color_by": config.color_by, "label": config.label}
    if config.metadata is None:
        check_columns(None, requested)
        return None
    table = read_table(config.metadata, "metadata file", text_columns=(config.id_col,))
    if config.id_col not in table.columns:
        raise ConfigError(f"metadata {source_name(config.metadata)} has no id column {config.id_col!r} "
                          f"(columns: {', '.join(map(str, table.columns))})", "pass `id_col` NAME")
    table = _without_vector_columns(config, table)
    check_columns(table.drop(columns=[config.id_col]), requested)
    return table


def shares_vector_file(config: Config) -> bool:
    """True when one file is given as both the vectors and the metadata."""
    return (isinstance(config.vectors, str) and isinstance(config.metadata, str)
            and _same_source(config.vectors, config.metadata))


def check_vector_columns_named(config: Config) -> None:
    """Raise :class:`ConfigError` when a shared vectors/metadata file leaves its vector columns unnamed.

    Vector columns are never copied into the outputs; in a shared file they must
    be named (``vector_col`` or ``vector_cols``), since any numeric column could be one.
    """
    if shares_vector_file(config) and config.vector_col is None and config.vector_cols is None:
        raise ConfigError(f"{config.vectors} is both the vectors and the metadata, and which of its columns are "
                          "vector dimensions is not said",
                          "set `vector_col` (a list column) or `vector_cols` (a pattern such as 'dim_*')")


def _without_vector_columns(config: Config, table: pd.DataFrame) -> pd.DataFrame:
    """The metadata table without the vectors' columns when it is the vectors' own file."""
    if not shares_vector_file(config):
        return table
    check_vector_columns_named(config)
    names = [str(name) for name in table.columns]
    dropped = [config.vector_col] if config.vector_col is not None else vector_columns(names, config.vector_cols)
    return table.drop(columns=[name for name in dropped if name in table.columns and name != config.id_col])


def _same_source(first: str, second: str) -> bool:
    return first == second or ("://" not in first and "://" not in second
                               and os.path.abspath(first) == os.path.abspath(second))


def joined_metadata(config: Config, ids: np.ndarray, table: pd.DataFrame | None, *,
                    log_ignored: bool = True) -> pd.DataFrame | None:
    """One metadata row per item, in item order (None without metadata).

    Raises
    ------
    InputError
        When items have no row, or ids match more than one row.
    """
    if table is None:
        return None
    return join_metadata(ids, table, config.id_col, source_name(config.metadata), log_ignored=log_ignored)
