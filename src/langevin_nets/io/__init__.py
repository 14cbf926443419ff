"""Reading data and config files and writing a run's outputs for the ``langevin-nets`` command."""

from langevin_nets.io.config import (
    DEFAULTS,
    METHODS,
    OPTIONS,
    InputError,
    InputTypeError,
    load_toml,
    to_toml,
    validate,
)
from langevin_nets.io.csv_data import Dataset, Table, load_dataset, read_table

__all__ = [
    "DEFAULTS",
    "METHODS",
    "OPTIONS",
    "Dataset",
    "InputError",
    "InputTypeError",
    "Table",
    "load_dataset",
    "load_toml",
    "read_table",
    "to_toml",
    "validate",
]
