"""The README's "Drop in a component" files and commands, run as written: a component kind whose
interface changes breaks this test, not a reader's first attempt."""

import re
import shlex
from pathlib import Path

import pytest
from accelerate.state import AcceleratorState

from gan_colorize.cli import main
from gan_colorize.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]
SECTION = REPO.joinpath("README.md").read_text().split("## Drop in a component", 1)[1].split("\n## ", 1)[0]
FAST = ["data.size=32", "data.batch_size=4", "data.workers=0", "data.crops_per_epoch=16", "train.steps=4"]
FAST += [
    "train.warmup_l1_steps=0",
    "train.log_every=1",
    "run.trackers=[]",
    "train.eval_every=0",
    "train.deterministic=true",
]


def readme_files() -> dict[str, str]:
    blocks = re.findall(r"```python\n# file: (\S+)\n(.*?)```", SECTION, flags=re.S)
    return {path: code for path, code in blocks}


def readme_commands() -> list[list[str]]:
    (bash,) = [b for b in re.findall(r"```bash\n(.*?)```", SECTION, flags=re.S) if "my_components" in b]
    lines = bash.replace("\\\n", " ").splitlines()
    return [shlex.split(line) for line in lines if line.strip()]


def test_the_readme_shows_one_file_for_each_kind():
    assert set(readme_files()) == {
        f"my_components/{name}.py"
        for name in ("generators", "discriminators", "adversarial", "regularizers", "features", "metrics")
    }


@pytest.mark.slow
def test_the_readme_components_train_and_score(tmp_path, monkeypatch):
    for path, code in readme_files().items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))  # the README's PYTHONPATH=.
    monkeypatch.chdir(tmp_path)
    train_cmd, eval_cmd = readme_commands()
    assert train_cmd[:3] == ["PYTHONPATH=.", "python", "train.py"]
    args = ["train", *train_cmd[3:]]
    args[args.index("--config") + 1] = str(REPO / args[args.index("--config") + 1])
    try:
        assert main(args + sum((["--set", o] for o in FAST), [])) == 0
    finally:
        AcceleratorState._reset_state()
    run = RunDir(tmp_path / "runs" / "mine")
    rows = run.read_metrics()
    assert {"loss/d", "loss/g_adv", "loss/l1", "loss/perceptual"} <= set(rows[-1]), rows[-1]
    # the outside regularizer (interval 4) runs at step 0 of 0-3: its term is in the row of step 1 only
    assert [r["step"] for r in rows if "loss/d_R2Penalty" in r] == [1], rows
    assert eval_cmd[:2] == ["PYTHONPATH=.", "gan-colorize"]
    assert main(eval_cmd[2:]) == 0
    (metrics_file,) = run.root.glob("eval/*/metrics.json")
    assert "mean_chroma_error" in metrics_file.read_text()
