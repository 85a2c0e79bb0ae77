from pathlib import Path

import pytest
import yaml

from gan_colorize.config import Config, ConfigError, load_config, save_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, data) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_defaults_and_overrides_parse_yaml_values():
    cfg = load_config(
        None, ["train.lr_g=1e-4", "data.scale=[0.5, 1]", "model.discriminator={type: pixelgan}"]
    )
    assert cfg.train.lr_g == pytest.approx(1e-4)
    assert cfg.data.scale == [0.5, 1.0] and all(isinstance(x, float) for x in cfg.data.scale)
    assert cfg.model.discriminator == {"type": "pixelgan"}


def test_unknown_key_names_key_and_suggests(tmp_path):
    path = write(tmp_path, {"train": {"stpes": 10}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "train.stpes" in str(err.value) and "'steps'" in str(err.value) and str(path) in str(err.value)


def test_unknown_section_suggests():
    with pytest.raises(ConfigError, match=r"'trian'.*did you mean 'train'"):
        load_config(None, ["trian.steps=3"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.steps=ten", "train.steps: expected int"),
        ("train.channels_last=1", "expected true/false"),
        ("data.batch_size=true", "expected an integer"),
        ("loss.objective=gann", "did you mean 'gan'"),
        ("loss.gan_mode=lsgn", "did you mean 'lsgan'"),
        ("data.scale=3", "expected a list"),
    ],
)
def test_wrong_values_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override, "model.discriminator={type: patchgan}"])


def test_gan_without_discriminator_is_an_error():
    with pytest.raises(ConfigError, match="model.discriminator"):
        load_config(None, ["loss.objective=gan", "model.discriminator=null"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config(None, ["train.steps"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(REPO / "configs" / "unet_gan.yaml", ["train.steps=7"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and again.train.steps == 7


@pytest.mark.parametrize("path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), Config)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")
