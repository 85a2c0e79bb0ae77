"""Data at scale (issue #11): the index (headers or full screening, built by a pool, cached), file
lists, WebDataset shards (written by ``data shard``, streamed per rank and worker, corrupt members
skipped), reduced-scale JPEG decoding."""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from gan_colorize.config import DataConfig
from gan_colorize.data import build_datasets, read_file_list
from gan_colorize.data import index as index_mod
from gan_colorize.data.dataset import ImageFolderDataset, draw_crop
from gan_colorize.data.decode import ImageReader, load_rgb
from gan_colorize.data.files import list_image_files
from gan_colorize.data.index import screen
from gan_colorize.data.shard_writer import write_shards
from gan_colorize.data.shards import ShardDataset, shard_samples
from gan_colorize.training.stream import train_batches

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


def photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A colour crop of the astronaut at a seed-chosen offset, resized to (w, h)."""
    big = skdata.astronaut()
    x, y = (seed * 37) % 200, (seed * 53) % 200
    return np.asarray(
        Image.fromarray(big[y : y + 300, x : x + 300]).resize((w, h), Image.Resampling.BILINEAR)
    )


def unique_colour(i: int) -> tuple[int, int, int]:
    """Distinct strongly coloured RGB values (chroma far above data.min_chroma)."""
    return 200, 20 + i % 200, 20 + 3 * (i // 200)


def colour_folder(root: Path, n: int) -> Path:
    """``n`` PNGs of one flat colour each (a crop of them is that colour exactly: sample identity)."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (24 + i % 5, 20), unique_colour(i)).save(root / f"c{i:04d}.png")
    return root


def colours_of(batch: torch.Tensor) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in item[:, 0, 0]) for item in batch]


def shards_of(folder: Path, out: Path, shard_size: int, max_side=None) -> dict:
    files = list_image_files(folder)
    return write_shards(files, folder, out, shard_size, max_side, workers=1, progress=lambda n: None)


# ---------------------------------------------------------------- the index
def test_headers_and_full_screening_give_the_same_samples_without_greyscale(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(6):
        Image.fromarray(photo(90 + 10 * i, 70, i)).save(root / f"p{i}.jpg", quality=90)
    sets = {}
    for mode in ("headers", "full"):
        cfg = DataConfig(train=str(root), size=16, eval_fraction=0.3, screening=mode, workers=0)
        train, evaluation = build_datasets(cfg, seed=3)
        stream = train_batches(train, 4, 0, 1, 3, 0, 0, False)
        sets[mode] = (train.files, evaluation.files, [next(stream) for _ in range(4)])
    (ft, fe, fb), (ht, he, hb) = sets["full"], sets["headers"]
    assert ft == ht and fe == he and all(torch.equal(a, b) for a, b in zip(fb, hb))


def test_headers_mode_replaces_a_greyscale_rgb_file_when_loaded_deterministically(tmp_path, caplog):
    root = tmp_path / "photos"
    root.mkdir()
    Image.fromarray(photo(40, 40, 1)).save(root / "a.png")
    grey = np.asarray(Image.fromarray(photo(40, 40, 2)).convert("L"))
    Image.fromarray(np.stack([grey] * 3, axis=2)).save(root / "b.png")  # RGB mode, no colour
    Image.fromarray(grey).save(root / "c.png")  # L mode: known greyscale from the header
    ds = ImageFolderDataset(
        root, 16, screening=screen(list_image_files(root), 4.0, 0.05, "t", mode="headers")
    )
    assert [p.name for p in ds.files] == ["a.png", "b.png"] and [p.name for p in ds.greyscale] == ["c.png"]
    with caplog.at_level(logging.INFO, logger="gan_colorize.data.dataset"):
        item = ds[(0, 1)]  # b.png -> replaced by a.png with its own draw
    assert "greyscale image, another one used instead" in caplog.text and "b.png" in caplog.text
    assert torch.equal(item, ds[(0, 1)])
    assert float(item.float().std(0).mean()) > 1  # colour: the channels differ


def test_the_index_is_built_by_a_pool_once_and_then_read(tmp_path, monkeypatch):
    root = colour_folder(tmp_path / "c", 2 * index_mod.POOL_MIN_FILES)
    cfg = DataConfig(train=str(root), size=16, index_workers=2, index_dir=str(tmp_path / "idx"))
    first = build_datasets(cfg)[0].files
    assert list((tmp_path / "idx" / "index").glob("*.json"))

    def refuse(*args):
        raise AssertionError("a file was read again although the index knows it")

    monkeypatch.setattr(index_mod, "read_all", refuse)
    assert build_datasets(cfg)[0].files == first  # another rank, or the next run


def test_a_damaged_index_file_is_rebuilt(tmp_path):
    root = colour_folder(tmp_path / "c", 4)
    cfg = DataConfig(train=str(root), size=16, index_dir=str(tmp_path / "idx"))
    first = build_datasets(cfg)[0].files
    (index_file,) = (tmp_path / "idx" / "index").glob("*.json")
    index_file.write_text('{"version": 3, "files": {"x": [1')
    assert build_datasets(cfg)[0].files == first
    assert json.loads(index_file.read_text())["version"] == 3


# ---------------------------------------------------------------- file lists
def test_file_list_parsing_follows_the_usual_split_files(tmp_path):
    (tmp_path / "lists").mkdir()
    listing = tmp_path / "lists" / "train.txt"
    listing.write_text(
        "# ImageNet train_cls.txt / Places365 style labels, COCO style bare paths\n"
        "../img/n01/a b.jpg 17\n"
        "../img/n01/c.jpg\t3\n"
        "\n"
        "/abs/d.jpg\n"
        "../img/n01/c.jpg 3\n"
    )
    assert read_file_list(listing) == [
        tmp_path / "img" / "n01" / "a b.jpg",
        tmp_path / "img" / "n01" / "c.jpg",
        Path("/abs/d.jpg"),
    ]


@pytest.mark.slow
def test_a_file_list_with_relative_paths_trains(tmp_path):
    from gan_colorize.config import load_config
    from gan_colorize.training import train

    images = tmp_path / "data" / "images"
    images.mkdir(parents=True)
    lines = []
    for i in range(8):
        Image.fromarray(photo(48, 40, i)).save(images / f"x{i}.jpg", quality=90)
        lines.append(f"images/x{i}.jpg {i % 2}")
    (tmp_path / "data" / "train.txt").write_text("\n".join(lines[:6]) + "\n")
    (tmp_path / "data" / "val.txt").write_text("\n".join(lines[6:]) + "\n")
    cfg = load_config(
        REPO / "configs" / "tiny" / "unet_l1.yaml",
        [
            f"data.train={tmp_path / 'data' / 'train.txt'}", f"data.eval={tmp_path / 'data' / 'val.txt'}",
            "data.size=32", "data.batch_size=2", "data.workers=0", "train.steps=2", "train.log_every=1",
            "train.sample_every=1000", "train.checkpoint_every=1000", "run.trackers=[]",
            f"run.dir={tmp_path / 'run'}",
        ],
    )  # fmt: skip
    run = train(cfg)
    assert [r["step"] for r in run.read_metrics()] == [1, 2]


# ---------------------------------------------------------------- shards
def test_a_shard_decodes_to_the_pixels_of_its_source(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(photo(120, 90, 0)).save(src / "a.jpg", quality=92)
    Image.fromarray(photo(60, 50, 1)).save(src / "b.png")
    Image.fromarray(photo(70, 64, 2)).convert("RGB").save(src / "c.bmp")
    index = shards_of(src, tmp_path / "kept", 2)
    assert index["samples"] == 3 and [s["samples"] for s in index["shards"]] == [2, 1]
    members = {}
    for shard in sorted((tmp_path / "kept").glob("*.tar")):
        members.update({key: (name, data) for key, name, data in shard_samples(str(shard))})
    assert set(members) == {"a", "b", "c"}
    for key, source in (("a", "a.jpg"), ("b", "b.png"), ("c", "c.bmp")):
        name, data = members[key]
        with ImageReader(name, data) as reader:
            decoded = np.asarray(reader.decode().convert("RGB"))
        assert np.array_equal(decoded, load_rgb(src / source))  # same pixels (jpg: same bytes)
    assert members["a"][1] == (src / "a.jpg").read_bytes()

    index = shards_of(src, tmp_path / "small", 10, max_side=64)  # a and c downscaled, b kept
    assert index["resized"] == 2
    ((shard),) = (tmp_path / "small").glob("*.tar")
    small = {key: data for key, _, data in shard_samples(str(shard))}
    assert small["b"] == (src / "b.png").read_bytes()
    got = np.asarray(Image.open(io.BytesIO(small["a"]))).astype(int)
    want = np.asarray(Image.open(src / "a.jpg").resize((64, 48), Image.Resampling.BICUBIC)).astype(int)
    reencoded = io.BytesIO()
    Image.fromarray(want.astype(np.uint8)).save(reencoded, "JPEG", quality=95)
    jpeg_error = np.abs(np.asarray(Image.open(reencoded)).astype(int) - want).mean()
    assert got.shape == want.shape and np.abs(got - want).mean() <= jpeg_error + 0.1


def test_data_shard_command_summarises_what_it_skipped(tmp_path, capsys):
    from gan_colorize.cli import main

    src = colour_folder(tmp_path / "src", 5)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    assert (
        main(["data", "shard", str(src), str(tmp_path / "out"), "--shard-size", "2", "--workers", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert "5 of 6 images in 3 shards" in out and "skipped 1" in out and "broken.jpg" in out
    assert "data.train: " + str(tmp_path / "out" / "shard-{000000..000002}.tar") in out
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert [s["samples"] for s in index["shards"]] == [2, 2, 1]


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def png_bytes(colour) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (20, 20), colour).save(out, "PNG")
    return out.getvalue()


class Boom:
    def __reduce__(self):
        return (os.system, ("touch UNPICKLED",))


def test_a_corrupt_member_is_skipped_with_a_warning_naming_shard_and_member(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shard = tmp_path / "s-000000.tar"
    write_tar(
        shard,
        [
            ("a.png", png_bytes(unique_colour(0))),
            ("b.jpg", b"\xff\xd8\xff corrupt"),
            ("c.pyd", pickle.dumps(Boom())),  # a pickle member: must never be loaded
            ("d.png", png_bytes(unique_colour(3))),
        ],
    )
    ds = ShardDataset(str(shard), 8, crop="random", hflip=False)
    assert len(ds) == 4  # counted from the headers: a, b, c, d
    with caplog.at_level(logging.WARNING, logger="gan_colorize.data.shards"):
        batch = next(train_batches(ds, 4, 0, 1, 0, 0, 0, False))
    assert "s-000000.tar" in caplog.text and "member b.jpg" in caplog.text and "member c" in caplog.text
    # b and c stand in by the next usable sample of the shard (d): positions never shift
    assert colours_of(batch) == [unique_colour(0), unique_colour(3), unique_colour(3), unique_colour(3)]
    assert not (tmp_path / "UNPICKLED").exists()


def test_shard_stream_resumes_exactly_and_covers_each_epoch_once(tmp_path):
    folder = colour_folder(tmp_path / "c", 24)
    shards_of(folder, tmp_path / "shards", 4)  # 6 shards
    ds = ShardDataset(str(tmp_path / "shards" / "shard-{000000..000005}.tar"), 8, crop="random")
    assert len(ds) == 24
    straight = train_batches(ds, 3, 0, 1, 0, 0, 2, False)
    batches = [next(straight) for _ in range(12)]  # 36 samples: 1.5 epochs
    resumed = train_batches(ds, 3, 0, 1, 0, 5, 2, False)
    assert all(torch.equal(next(resumed), b) for b in batches[5:9])
    first_epoch = [c for b in batches[:8] for c in colours_of(b)]
    assert sorted(first_epoch) == sorted(unique_colour(i) for i in range(24))


TORCHRUN_SCRIPT = """
import json, os, sys
from gan_colorize.data.shards import ShardDataset
from gan_colorize.training.stream import train_batches
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
ds = ShardDataset(sys.argv[1], 8, crop="random")
stream = train_batches(ds, 2, rank, world, 0, 0, int(sys.argv[3]), False)
seen = [[int(v) for v in item[:, 0, 0]] for _ in range(len(ds) // (2 * world)) for item in next(stream)]
with open(f"{sys.argv[2]}.{rank}", "w") as f:
    json.dump(seen, f)
del stream  # loader workers ignore SIGTERM, so they must be ended before interpreter exit
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_two_torchrun_processes_read_disjoint_samples_whose_union_is_the_epoch(tmp_path, workers):
    folder = colour_folder(tmp_path / "c", 32)
    shards_of(folder, tmp_path / "shards", 4)  # 8 shards of 4: one epoch is 8 batches of 2 per rank
    script = tmp_path / "read.py"
    script.write_text(TORCHRUN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0"]
    pattern = str(tmp_path / "shards" / "shard-{000000..000007}.tar")
    subprocess.run([*cmd, str(script), pattern, str(tmp_path / "seen"), str(workers)], env=env, check=True)
    seen = [{tuple(c) for c in json.loads((tmp_path / f"seen.{r}").read_text())} for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) == 16 and not seen[0] & seen[1]
    assert seen[0] | seen[1] == {unique_colour(i) for i in range(32)}


# ---------------------------------------------------------------- reduced-scale decoding
def test_reduced_decode_of_a_large_jpeg_stays_within_the_crops_own_resampling_error(tmp_path):
    big = Image.fromarray(skdata.astronaut()).resize((1600, 1200), Image.Resampling.BICUBIC)
    path = tmp_path / "big.jpg"
    big.save(path, quality=92)
    full = Image.fromarray(load_rgb(path))
    for i in range(4):
        plan = draw_crop(full.size, 64, np.random.default_rng(i), "random_resized", (0.35, 1.0), True)
        with ImageReader(path) as reader:
            reduced = reader.decode(plan.decode_size())
            scale = reader.scale
        assert scale <= 0.25  # 1200 px for a 64 px crop: decoded at 1/4 or 1/8
        exact = np.asarray(plan.apply(full)).astype(int)
        fast = np.asarray(plan.apply(reduced, scale)).astype(int)
        # the augmentation's own resampling error: the same crop with bilinear instead of bicubic
        box = plan.box
        other = full.resize((64, 64), Image.Resampling.BILINEAR, box=box)
        if plan.flip:
            other = other.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        own = np.abs(exact - np.asarray(other).astype(int)).mean()
        assert np.abs(exact - fast).mean() <= max(own, 1.0)


def test_the_loaders_colour_check_decides_as_chroma_level_does():
    from gan_colorize.data.decode import chroma_level, has_colour

    rng = np.random.default_rng(0)
    base = np.asarray(Image.fromarray(skdata.astronaut()).convert("L").resize((96, 96))).astype(int)
    for tint in (0, 1, 2, 3, 5, 8, 12, 20, 40, 80):
        for _ in range(3):
            shift = rng.integers(-tint, tint + 1, size=3)
            rgb = np.clip(base[..., None] + shift, 0, 255).astype(np.uint8)
            rgb[: int(rng.integers(0, 4)), :8] = (220, 30, 30)  # a few coloured pixels, sometimes
            level = chroma_level(rgb)
            for threshold in (1.0, 4.0, 10.0, 30.0):
                assert has_colour(rgb, threshold) == (level >= threshold), (tint, threshold, level)


def test_pipe_urls_stream_shards_and_need_the_shard_index(tmp_path):
    from gan_colorize.data.index import DatasetError

    folder = colour_folder(tmp_path / "c", 8)
    shards_of(folder, tmp_path / "shards", 4)
    pattern = f"pipe:cat {tmp_path / 'shards'}/shard-{{000000..000001}}.tar"
    with pytest.raises(DatasetError, match="data.shard_index"):
        ShardDataset(pattern, 8)
    piped = ShardDataset(pattern, 8, crop="random", index=tmp_path / "shards" / "index.json")
    local = ShardDataset(str(tmp_path / "shards" / "shard-{000000..000001}.tar"), 8, crop="random")
    assert len(piped) == len(local) == 8
    a, b = train_batches(piped, 4, 0, 1, 0, 0, 0, False), train_batches(local, 4, 0, 1, 0, 0, 0, False)
    assert all(torch.equal(next(a), next(b)) for _ in range(3))


@pytest.mark.slow
def test_the_classification_baseline_trains_on_shards(tmp_path):
    # its class-rebalancing prior is estimated from crops: from the stream, as shards cannot be indexed
    from gan_colorize.config import load_config
    from gan_colorize.training import train

    folder = colour_folder(tmp_path / "photos", 12)
    shards_of(folder, tmp_path / "shards", shard_size=4)
    cfg = load_config(
        REPO / "configs" / "tiny" / "classification.yaml",
        [
            f"data.train={tmp_path / 'shards' / 'shard-{000000..000002}.tar'}", f"data.eval={folder}",
            "data.size=32", "data.batch_size=2", "data.workers=0", "train.steps=2", "train.log_every=1",
            "train.eval_every=0", "loss.prior_samples=5", "run.trackers=[]", f"run.dir={tmp_path / 'run'}",
        ],
    )  # fmt: skip
    run = train(cfg)
    assert [r["step"] for r in run.read_metrics()] == [1, 2]
    prior = np.load(run.prior)
    assert prior.shape == (313,) and abs(prior.sum() - 1) < 1e-6


def test_data_inspect_reads_a_file_list(tmp_path, capsys):
    from gan_colorize.cli import main

    folder = colour_folder(tmp_path / "photos", 4)
    names = sorted(p.name for p in folder.iterdir())
    (tmp_path / "list.txt").write_text("".join(f"photos/{n} 0\n" for n in names))
    assert main(["data", "inspect", str(tmp_path / "list.txt"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 4 and summary["readable"] == 4


def test_an_index_cache_that_cannot_be_written_is_a_warning(tmp_path, caplog, monkeypatch):
    from gan_colorize.data.files import default_cache_path

    folder = colour_folder(tmp_path / "photos", 4)
    cfg = DataConfig(train=str(folder), index_dir=str(tmp_path / "cache"), index_workers=1, eval_fraction=0.5)
    default_cache_path(str(folder), "index", cfg.index_dir).mkdir(parents=True)  # a folder in its place
    with caplog.at_level("WARNING"):
        train_set, _ = build_datasets(cfg)
    assert len(train_set) > 0 and "cannot be written" in caplog.text


def test_data_shard_refuses_an_output_that_is_a_file(tmp_path, capsys):
    from gan_colorize.cli import main

    folder = colour_folder(tmp_path / "photos", 2)
    (tmp_path / "out").write_text("a file")
    assert main(["data", "shard", str(folder), str(tmp_path / "out")]) == 2
    assert "is a file" in capsys.readouterr().err
