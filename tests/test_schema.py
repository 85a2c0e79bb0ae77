"""The one YAML schema reader: configs, study files and evaluation sets check keys and types alike."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from gan_colorize.evaluation import EvalSetError, load_eval_set
from gan_colorize.schema import SchemaError, read_dataclass


@dataclass
class Inner:
    rate: float = 0.1
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    title: str = ""
    inner: Inner = field(default_factory=Inner)


def test_keys_types_and_nesting_are_checked_with_suggestions():
    read = read_dataclass(Outer, {"title": "t", "inner": {"rate": 1, "names": ["a"]}}, "f.yaml")
    assert read.inner.rate == 1.0 and isinstance(read.inner.rate, float)  # an int where a float goes
    with pytest.raises(SchemaError, match=r"f\.yaml: inner: unknown key 'rat' \(did you mean 'rate'\?\)"):
        read_dataclass(Outer, {"inner": {"rat": 1}}, "f.yaml")
    with pytest.raises(SchemaError, match=r"f\.yaml: inner\.names\[1\]: expected a string, got 2 \(int\)"):
        read_dataclass(Outer, {"inner": {"names": ["a", 2]}}, "f.yaml")
    with pytest.raises(SchemaError, match=r"f\.yaml: title: got False; YAML reads yes/no"):
        read_dataclass(Outer, {"title": False}, "f.yaml")
    with pytest.raises(SchemaError, match=r"f\.yaml: inner: expected a mapping, got 3"):
        read_dataclass(Outer, {"inner": 3}, "f.yaml")


@pytest.mark.parametrize(
    "content, message",
    [
        ({"data": "builtin:skimage", "sise": 32}, r"unknown key 'sise' \(did you mean 'size'\?\)"),
        ({"dat": "builtin:skimage"}, r"unknown key 'dat' \(did you mean 'data'\?\)"),
        ({"data": "builtin:skimage", "size": "big"}, r"x\.yaml: size: expected int, got 'big'"),
        ({"data": "builtin:skimage", "notes": True}, r"x\.yaml: notes: got True; YAML reads yes/no"),
        ({"data": "builtin:skimage", "metrics": [1]}, r"x\.yaml: metrics\[0\]: expected a string"),
        ({"data": "builtin:skimage", "eval_fraction": 0.2}, "applies to folders"),
        ({"data": "photos", "eval_fraction": True}, r"eval_fraction: expected float, got True"),
    ],
)
def test_eval_sets_are_read_by_the_schema_reader(tmp_path, content, message):
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(content))
    with pytest.raises(EvalSetError, match=message):
        load_eval_set(tmp_path / "x.yaml")


def test_an_eval_sets_metrics_may_be_one_comma_separated_string(tmp_path):
    (tmp_path / "x.yaml").write_text(
        yaml.safe_dump({"data": "d", "metrics": "psnr, ssim", "eval_fraction": 1 / 4})
    )
    eval_set = load_eval_set(tmp_path / "x.yaml")
    assert eval_set.metrics == ["psnr", "ssim"] and eval_set.eval_fraction == 0.25 and eval_set.name == "x"
