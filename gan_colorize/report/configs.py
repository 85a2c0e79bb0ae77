"""What a row's run was configured with: its resolved ``config.yaml``, and how it differs from the base row.

Plain YAML read with ``safe_load`` (no code runs): a run folder may come from anywhere.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gan_colorize.evaluation.results import ResultRow

# keys every run sets differently and that say nothing about the approach
IGNORED_KEYS = ("run.dir", "run.name")
MAX_DIFFERENCES = 6  # "differs by" shows this many pairs, then "+N more"
BASE_TEXT = "(base)"
NO_CONFIG_TEXT = "—"


def read_run_config(row: ResultRow) -> dict | None:
    """The resolved config of the run behind ``row``: RUN/config.yaml, else the file its metrics.json
    names; None for an outside method (or an unreadable file)."""
    run = row.run_folder
    candidates = [run / "config.yaml"] if run is not None else []
    candidates += [Path(row.config)] if row.config else []
    config = next((c for c in candidates if c.is_file()), None)
    try:
        data = yaml.safe_load(config.read_text()) if config else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError):  # a file from elsewhere may hold anything
        return None
    return data if isinstance(data, dict) else None


def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    """{"loss": {"lambda_l1": 100}} -> {"loss.lambda_l1": 100}; component specs flatten too."""
    flat: dict[str, object] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def _short(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("'", "")


def differences(config: dict, base: dict) -> list[str]:
    """``key: value`` for each setting of ``config`` that differs from ``base`` (sorted by key)."""
    mine, theirs = flatten(config), flatten(base)
    keys = sorted((set(mine) | set(theirs)) - set(IGNORED_KEYS))
    return [f"{key}: {_short(mine.get(key))}" for key in keys if mine.get(key) != theirs.get(key)]


def differs_text(row: ResultRow, config: dict | None, base: dict | None, is_base: bool) -> str:
    """The "differs by" cell: the base row says so; an outside method names its folder."""
    if row.run is None and config is None:
        return f"outside method: {row.pred_dir.name if row.pred_dir else row.approach}"
    if config is None or base is None:
        return NO_CONFIG_TEXT
    if is_base:
        return BASE_TEXT
    pairs = differences(config, base)
    if not pairs:
        return "same config"
    shown = ", ".join(pairs[:MAX_DIFFERENCES])
    return shown + (f", +{len(pairs) - MAX_DIFFERENCES} more" if len(pairs) > MAX_DIFFERENCES else "")


def differs_by(rows: list[ResultRow]) -> list[str]:
    """One "differs by" cell per row: its config against the first row that has one (the study's
    first run)."""
    configs = [read_run_config(r) for r in rows]
    base_index = next((i for i, c in enumerate(configs) if c is not None), None)
    base = configs[base_index] if base_index is not None else None
    return [differs_text(r, c, base, i == base_index) for i, (r, c) in enumerate(zip(rows, configs))]
