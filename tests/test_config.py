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
        ("loss.adversarial={type: lsgn}", "loss.adversarial: unknown adversarial loss 'lsgn'.*'lsgan'"),
        ("loss.gan_mode=lsgan", "'loss.gan_mode' was replaced by loss.adversarial"),
        ("model.discriminator={type: patchgna}", "model.discriminator: unknown discriminator 'patchgna'"),
        ("model.discriminator={type: patchgan, n_layer: 2}", "takes no argument 'n_layer'.*'n_layers'"),
        ("loss.regularizers=[{type: r2}]", r"loss.regularizers\[0\]: unknown regularizer 'r2'.*'r1'"),
        ("loss.regularizers=[{type: r1, gama: 1}]", "takes no argument 'gama'.*'gamma'"),
        ("loss.objective=no_such_module_xyz:Obj", "cannot import module 'no_such_module_xyz'"),
        ("model.generator={type: unet, widht: 8}", "'widht'.*'width'"),
        ("train.d_steps_per_g_step=0", "train.d_steps_per_g_step: 0 is below its minimum 1"),
        ("train.warmup_l1_steps=20000", r"train.warmup_l1_steps \(20000\) >= train.steps \(20000\)"),
        ("data.scale=3", "expected a list"),
        # values that used to pass and then crash late or silently do nothing
        ("train.log_every=0", "train.log_every: 0 is below its minimum 1"),
        ("train.checkpoint_every=0", "train.checkpoint_every: 0 is below"),
        ("train.grad_accum=0", "train.grad_accum: 0 is below"),
        ("train.seed=-1", "train.seed: -1 is below"),
        ("data.workers=-1", "data.workers: -1 is below"),
        ("data.crops_per_epoch=0", "data.crops_per_epoch"),
        ("data.scale=[0.5]", "data.scale"),
        ("data.scale=[1.5, 0.2]", "data.scale"),
        ("train.betas=[0.5]", "train.betas"),
        ("data.eval_fraction=2", "data.eval_fraction: 2.0 is outside"),
        ("data.max_bad_fraction=-1", "data.max_bad_fraction"),
        ("data.min_chroma=.nan", "data.min_chroma: nan is outside"),
        ("train.ema_decay=1", "train.ema_decay: 1.0 is outside"),
        ("loss.temperature=0", "loss.temperature"),
        ("data.scale=[0.5", "not valid YAML"),
    ],
)
def test_wrong_values_are_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, ["model.discriminator={type: patchgan}", override])


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


def test_train_command_reports_a_bad_override_as_a_usage_error(capsys):
    from gan_colorize.cli import main

    code = main(["train", "--config", str(REPO / "configs/tiny/regression.yaml"), "--set", "data.scale=[0.5"])
    assert code == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_a_binary_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "weights.yaml"
    path.write_bytes(b"\x80\x81\xfe\xff" * 8)
    with pytest.raises(ConfigError, match="weights.yaml: not a text file"):
        load_config(path)


def test_base_inheritance_deep_merges_relative_to_the_file(tmp_path):
    (tmp_path / "bases").mkdir()
    (tmp_path / "bases" / "root.yaml").write_text(
        "model: {discriminator: {type: patchgan, n_layers: 2, width: 16}}\n"
        "train: {steps: 50, lr_g: 1.0e-3, betas: [0.5, 0.999]}\n"
    )
    (tmp_path / "bases" / "mid.yaml").write_text("base: root.yaml\ntrain: {steps: 70}\n")
    (tmp_path / "variant.yaml").write_text(
        "base: bases/mid.yaml\n"
        "model: {discriminator: {width: 32}}\n"  # merged: n_layers from the base stays
        "train: {betas: [0.9, 0.99]}\n"  # a list replaces
    )
    cfg = load_config(tmp_path / "variant.yaml")
    assert cfg.model.discriminator == {"type": "patchgan", "n_layers": 2, "width": 32}
    assert (cfg.train.steps, cfg.train.lr_g, cfg.train.betas) == (70, 1e-3, [0.9, 0.99])
    # another type replaces the whole spec: the old type's arguments would not fit it
    (tmp_path / "pixel.yaml").write_text("base: variant.yaml\nmodel: {discriminator: {type: pixelgan}}\n")
    assert load_config(tmp_path / "pixel.yaml").model.discriminator == {"type": "pixelgan"}


def test_base_errors_name_the_file(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="makes a cycle"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"c.yaml: base config .*missing.yaml does not exist"):
        load_config(tmp_path / "c.yaml")


def test_one_set_flag_takes_several_overrides():
    from gan_colorize.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--config", "x.yaml", "--set", "train.steps=3", "train.lr_g=0.1", "--set", "data.size=32"]
    )
    assert args.overrides == ["train.steps=3", "train.lr_g=0.1", "data.size=32"]
    args = build_parser().parse_args(["experiment", "s.yaml", "--set", "train.steps=3", "data.size=32"])
    assert args.overrides == ["train.steps=3", "data.size=32"]


def test_a_bare_component_name_reads_as_its_spec():
    cfg = load_config(
        None, ["loss.adversarial=hinge", "loss.regularizers=[r1]", "model.discriminator=pixelgan"]
    )
    assert cfg.loss.adversarial == {"type": "hinge"} and cfg.loss.regularizers == [{"type": "r1"}]
    assert cfg.model.discriminator == {"type": "pixelgan"}
    with pytest.raises(ConfigError, match=r"loss.adversarial: unknown adversarial loss 'hingee'"):
        load_config(None, ["loss.adversarial=hingee"])


def test_a_module_that_cannot_be_found_hints_at_the_python_path():
    with pytest.raises(ConfigError, match=r"no_such_module_xyz.*PYTHONPATH=\."):
        load_config(None, ["model.discriminator={type: no_such_module_xyz:D}"])


def test_an_error_from_an_override_says_the_overrides_were_applied(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train: {steps: 10}\n")
    with pytest.raises(ConfigError, match=r"c.yaml with the --set overrides: train.warmup_l1_steps \(10\)"):
        load_config(config, ["train.warmup_l1_steps=10"])


def test_training_on_the_shipped_data_folder_that_is_missing_says_what_to_do(tmp_path, monkeypatch):
    from gan_colorize.data import build_datasets

    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        FileNotFoundError, match=r"data/train does not exist .*put them there .*--set data.train=PATH"
    ):
        build_datasets(load_config(None, ["data.train=data/train"]).data)
