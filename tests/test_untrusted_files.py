"""Files from elsewhere never run code (issue #10): ``tests/untrusted_files.py`` on each command."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("untrusted_files.py")


def _load_script():
    spec = importlib.util.spec_from_file_location("untrusted_files", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


untrusted_files = _load_script()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny trained and evaluated run folder (and its config) for every command's cases."""
    folder = tmp_path_factory.mktemp("untrusted")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(folder / "torch_home"))  # no pretrained weights: nothing is fetched
    yield (*untrusted_files.build_run(folder / "base"), folder)
    mp.undo()


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        "train",
        "experiment",
        "colorize",
        "evaluate",
        "export",
    ],
)
def test_no_file_of_a_run_folder_runs_code(trained_run, command):
    base, config, scratch = trained_run
    cases = untrusted_files.cases(base)
    # every kind of file a run folder holds is among the cases, so a new one cannot be forgotten
    assert {
        "config.yaml",
        "metrics.jsonl",
        "prior.npy",
        "generator.pt",
        "training_state.pt",
        "rng_state_0.pt",
    } <= {Path(c.file).name for c in cases}
    problems = untrusted_files.check_command(command, base, config, scratch)
    assert not problems, "\n".join(problems)
