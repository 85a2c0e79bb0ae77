"""gan_colorize.data: file listing and its cache, the stable split, robust decoding, screening,
deterministic training crops, builtin:skimage, the evaluation protocol and ``data inspect``.

Everything runs on tiny images written to a temporary folder (no ../shared/data)."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile
from skimage import data as skdata

from gan_colorize.config import DataConfig
from gan_colorize.data import files as files_mod
from gan_colorize.data.dataset import (
    BUILTIN_EVAL,
    BUILTIN_TRAIN,
    BuiltinSkimage,
    DatasetError,
    EvalImages,
    ImageFolderDataset,
    build_datasets,
    draw_crop,
    eval_transform,
)
from gan_colorize.data.decode import (
    BadImageError,
    ImageReader,
    chroma_level,
    chroma_std,
    load_image_keep_alpha,
    load_rgb,
    pil_to_array,
)
from gan_colorize.data.files import in_eval_split, list_image_files, split_files

ORIENTATION = 0x0112  # EXIF tag


def colour_photo(w: int, h: int, which: str = "astronaut") -> np.ndarray:
    """A small real colour photo (uint8 H x W x 3)."""
    return np.asarray(Image.fromarray(getattr(skdata, which)()).resize((w, h), Image.Resampling.BICUBIC))


def save(path, array_or_img, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = array_or_img if isinstance(array_or_img, Image.Image) else Image.fromarray(array_or_img)
    img.save(path, **kwargs)


def jpeg_bytes(rgb: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95, **kwargs)
    return buf.getvalue()


def exif_with_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ORIENTATION] = value
    return exif


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """The index and file-list caches (on by default) go to a temporary folder, not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg_cache"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One of every case the decoder and the screening must handle."""
    root = tmp_path_factory.mktemp("images")
    photo = colour_photo(48, 40)
    (root / "corrupt.jpg").write_bytes(b"this is not a JPEG at all" * 20)
    (root / "truncated.jpg").write_bytes(jpeg_bytes(colour_photo(64, 48, "coffee"))[:1500])
    save(root / "cmyk.jpg", Image.fromarray(photo).convert("CMYK"), quality=95)
    ramp = np.tile(np.array([0, 32768, 65535, 1000], dtype=np.uint16), (5, 2))  # 5 x 8
    save(root / "deep16.png", Image.fromarray(ramp))
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:, :10, 3] = 0  # transparent band
    rgba[:, 10:20, 3] = 128  # half transparent band
    save(root / "rgba.png", rgba)
    palette = Image.fromarray(colour_photo(40, 30, "coffee")).convert("P", palette=Image.Palette.ADAPTIVE)
    save(root / "palette.gif", palette)
    save(root / "palette.png", palette)
    palette_t = palette.copy()
    palette_t.info["transparency"] = int(np.asarray(palette)[0, 0])
    save(root / "palette_transparent.png", palette_t, transparency=int(np.asarray(palette)[0, 0]))
    save(root / "grey.jpg", Image.fromarray(photo).convert("L"))
    grey3 = np.repeat(np.asarray(Image.fromarray(photo).convert("L"))[..., None], 3, axis=2)
    save(root / "nochroma.png", grey3)
    save(root / "tiny.png", colour_photo(7, 5, "chelsea"))
    save(root / "exif6.jpg", colour_photo(40, 24, "rocket"), exif=exif_with_orientation(6), quality=95)
    save(root / "exif6.png", colour_photo(40, 24, "rocket"), exif=exif_with_orientation(6))
    save(root / "sub" / "nested" / "deep.png", colour_photo(30, 30, "coffee"))
    save(root / "sub" / "UPPER.JPG", photo, quality=95)
    (root / "notes.txt").write_text("not an image")
    save(root / ".hidden.png", photo)
    return root


UNREADABLE = {"corrupt.jpg", "truncated.jpg"}
GREYSCALE = {"deep16.png", "grey.jpg", "nochroma.png"}


def rel_names(paths, root) -> set[str]:
    return {p.relative_to(root).as_posix() for p in paths}


# ---------------------------------------------------------------- files
def test_listing_is_recursive_sorted_case_insensitive_and_skips_other_files(folder):
    found = list_image_files(folder)
    rel = [p.relative_to(folder).as_posix() for p in found]
    assert rel == sorted(rel)
    assert {"sub/nested/deep.png", "sub/UPPER.JPG", "palette.gif", "corrupt.jpg"} <= set(rel)
    assert "notes.txt" not in rel and ".hidden.png" not in rel
    assert list_image_files(folder / "tiny.png") == [folder / "tiny.png"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_image_files(folder / "missing")


def test_file_list_cache_is_reused_and_invalidated_when_a_file_is_added(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    save(root / "a.png", colour_photo(8, 8))
    save(root / "x" / "b.png", colour_photo(8, 8))
    cache = tmp_path / "cache" / "list.json"
    first = list_image_files(root, cache)
    assert rel_names(first, root) == {"a.png", "x/b.png"} and cache.is_file()

    real_walk = files_mod._walk
    calls = []
    monkeypatch.setattr(files_mod, "_walk", lambda r: calls.append(r) or real_walk(r))
    assert list_image_files(root, cache) == first
    assert calls == []  # served from the cache

    folder = root / "x"
    before = os.stat(folder).st_mtime_ns
    save(folder / "c.png", colour_photo(8, 8))
    if os.stat(folder).st_mtime_ns == before:  # a filesystem with coarse timestamps
        os.utime(folder, ns=(before, before + 1_000_000_000))
    third = list_image_files(root, cache)
    assert len(calls) == 1
    assert rel_names(third, root) == {"a.png", "x/b.png", "x/c.png"}
    assert list_image_files(root, cache) == third and len(calls) == 1  # valid again


def test_eval_split_is_stable_when_files_are_added_and_has_the_asked_fraction(tmp_path):
    names = [f"img_{i:04d}.jpg" for i in range(4000)]
    old = [tmp_path / n for n in names[:3000]]
    train_a, eval_a = split_files(tmp_path, old, 0.1)
    train_b, eval_b = split_files(tmp_path, [tmp_path / n for n in names], 0.1)
    assert set(eval_a) <= set(eval_b) and set(train_a) <= set(train_b)
    assert set(eval_b) - set(eval_a) == {p for p in eval_b if p.name in names[3000:]}
    assert abs(len(eval_b) / 4000 - 0.1) < 0.02
    assert in_eval_split("a/b.jpg", 0.0) is False and in_eval_split("a/b.jpg", 1.0) is True


# ---------------------------------------------------------------- decoding
def test_corrupt_and_truncated_files_raise_naming_the_file_and_the_reason(folder):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    with pytest.raises(BadImageError, match="corrupt.jpg") as bad:
        load_rgb(folder / "corrupt.jpg")
    assert "identify" in bad.value.reason
    with pytest.raises(BadImageError, match="truncated.jpg") as cut:
        load_rgb(folder / "truncated.jpg")
    assert "truncated" in cut.value.reason
    with pytest.raises(BadImageError, match="truncated"):  # also at a reduced JPEG scale
        load_rgb(folder / "truncated.jpg", min_size=(8, 6))
    with pytest.raises(BadImageError, match="file not found"):
        load_rgb(folder / "nope.png")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_cmyk_jpeg_becomes_rgb_close_to_the_original(folder):
    rgb = load_rgb(folder / "cmyk.jpg")
    with Image.open(folder / "cmyk.jpg") as img:
        assert img.mode == "CMYK"
        assert np.array_equal(rgb, np.asarray(img.convert("RGB")))
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 48, 3)
    assert np.abs(rgb.astype(int) - colour_photo(48, 40)).mean() < 6


def test_16bit_grey_is_scaled_not_clipped_and_kept_for_inference(folder):
    rgb = load_rgb(folder / "deep16.png")
    assert rgb.dtype == np.uint8 and rgb.shape == (5, 8, 3)
    assert rgb[0, :4, 0].tolist() == [0, 128, 255, 4]  # round(v * 255 / 65535)
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
    rgb16, alpha, info = load_image_keep_alpha(folder / "deep16.png")
    assert rgb16.dtype == np.uint16 and rgb16[0, :4, 0].tolist() == [0, 32768, 65535, 1000]
    assert alpha is None and info["bits"] == 16 and info["size"] == (8, 5)
    # mode I (32-bit int) holding 16-bit values: PIL's in-memory form of some 16-bit files
    as_i = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32))
    assert as_i.mode == "I"
    assert pil_to_array(as_i)[0][0, :, 0].tolist() == [0, 128, 255]


def test_alpha_is_composited_on_white_for_training_and_kept_for_inference(folder):
    photo = np.asarray(Image.open(folder / "rgba.png"))[..., :3].astype(np.float64)
    rgb = load_rgb(folder / "rgba.png")
    assert (rgb[:, :10] == 255).all()
    assert np.array_equal(rgb[:, 20:], photo[:, 20:].astype(np.uint8))
    half = np.round(photo[:, 10:20] * 128 / 255 + 255 * (1 - 128 / 255))
    assert np.array_equal(rgb[:, 10:20], half.astype(np.uint8))
    rgb_keep, alpha, info = load_image_keep_alpha(folder / "rgba.png")
    assert np.array_equal(rgb_keep, photo.astype(np.uint8)) and alpha[:, :10].max() == 0
    assert alpha[0, 15] == 128 and info["mode"] == "RGBA" and info["bits"] == 8


@pytest.mark.parametrize("name", ["palette.gif", "palette.png"])
def test_palette_images_are_expanded_to_their_colours(folder, name):
    rgb = load_rgb(folder / name)
    with Image.open(folder / name) as img:
        assert img.mode == "P"
        expected = np.asarray(img.convert("RGB"))
    assert np.array_equal(rgb, expected)
    assert np.abs(rgb.astype(int) - colour_photo(40, 30, "coffee")).mean() < 12  # close to the photo


def test_palette_transparency_becomes_white(folder):
    rgb = load_rgb(folder / "palette_transparent.png")
    with Image.open(folder / "palette_transparent.png") as img:
        transparent = np.asarray(img) == img.info["transparency"]
    assert transparent.any() and (rgb[transparent] == 255).all()
    _, alpha, _ = load_image_keep_alpha(folder / "palette_transparent.png")
    assert np.array_equal(alpha == 0, transparent)


def test_greyscale_is_replicated_to_three_equal_channels(folder):
    rgb = load_rgb(folder / "grey.jpg")
    with Image.open(folder / "grey.jpg") as img:
        assert img.mode == "L"
        grey = np.asarray(img)
    assert rgb.shape == (*grey.shape, 3)
    for c in range(3):
        assert np.array_equal(rgb[..., c], grey)


@pytest.mark.parametrize("name", ["exif6.png", "exif6.jpg"])
def test_exif_orientation_6_is_applied(folder, name):
    rgb = load_rgb(folder / name)
    assert rgb.shape == (40, 24, 3)  # stored 40 wide x 24 high, shown turned a quarter clockwise
    with Image.open(folder / name) as img:
        assert img.getexif()[ORIENTATION] == 6
        stored = np.asarray(img.convert("RGB"))
    assert np.array_equal(rgb, np.rot90(stored, k=-1))  # 90 degrees clockwise
    if name.endswith(".png"):  # lossless: the very pixels of the photo, turned
        assert np.array_equal(rgb, np.rot90(colour_photo(40, 24, "rocket"), k=-1))
    with ImageReader(folder / name) as reader:
        assert reader.size == (24, 40)


def exif_with_text_orientation(text: bytes) -> bytes:
    """An APP1 EXIF block whose Orientation is ASCII (type 2), as some broken writers store it."""
    entry = struct.pack("<HHI4s", ORIENTATION, 2, len(text) + 1, text.ljust(4, b"\0"))
    return b"Exif\0\0II*\0" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)


def test_malformed_orientation_tag_is_read_as_pil_applies_it(tmp_path):
    # a text "6" is no rotation for exif_transpose: the header size must not be swapped either,
    # or every crop planned on it falls outside the decoded image
    path = tmp_path / "text6.jpg"
    save(path, colour_photo(30, 20), exif=exif_with_text_orientation(b"6"), quality=95)
    with Image.open(path) as img:
        assert img.getexif()[ORIENTATION] == "6"
    with ImageReader(path) as reader:
        assert reader.orientation == 1 and reader.size == (30, 20)
        assert reader.decode().size == (30, 20)
    ds = ImageFolderDataset(tmp_path, size=16, crop="random")
    assert ds[(0, 0)].shape == (3, 16, 16)


def test_jpeg_reduced_decode_keeps_orientation_and_the_minimum_size(tmp_path):
    path = tmp_path / "big.jpg"
    save(path, colour_photo(160, 96), exif=exif_with_orientation(6), quality=95)
    with ImageReader(path) as reader:
        assert reader.size == (96, 160)
        img = reader.decode(min_size=(24, 40))  # upright frame
        assert reader.scale == 0.25
    assert img.size == (24, 40)
    full = load_rgb(path)
    small = np.asarray(Image.fromarray(full).resize((24, 40), Image.Resampling.BOX)).astype(int)
    assert np.abs(np.asarray(img).astype(int) - small).mean() < 4  # the same picture, upright


def test_float_images_outside_unit_range_are_refused(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.full((4, 4), 200.0, dtype=np.float32)).save(path)
    with pytest.raises(BadImageError, match="outside"):
        load_rgb(path)
    ok = tmp_path / "float_ok.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)).save(ok)
    assert (load_rgb(ok) == 128).all()


def test_chroma_separates_colour_from_greyscale(folder):
    assert chroma_level(colour_photo(64, 64)) > 20
    grey = load_rgb(folder / "nochroma.png")
    assert chroma_level(grey) < 0.1 and chroma_std(grey) < 0.1
    assert chroma_level(load_rgb(folder / "grey.jpg")) < 0.1
    # a grey picture with one small red patch: little spread, but clearly colour
    spot = grey.copy()
    spot[:6, :6] = (220, 30, 30)
    assert chroma_std(spot) < chroma_level(spot) and chroma_level(spot) > 20


# ---------------------------------------------------------------- screening and training crops
def test_screening_skips_unreadable_and_greyscale_files_and_logs_them(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="gan_colorize.data.dataset"):
        ds = ImageFolderDataset(folder, size=16, max_bad_fraction=0.5)
    assert {p.name for p, _ in ds.skipped} == UNREADABLE
    assert all(reason for _, reason in ds.skipped)
    assert {p.name for p in ds.greyscale} == GREYSCALE
    assert {p.name for p in ds.files} == {
        "cmyk.jpg", "rgba.png", "palette.gif", "palette.png", "palette_transparent.png", "tiny.png",
        "exif6.jpg", "exif6.png", "deep.png", "UPPER.JPG",
    }  # fmt: skip
    assert len(ds) == len(ds.files)
    logged = caplog.text
    assert "corrupt.jpg" in logged and "truncated.jpg" in logged


def test_too_many_unreadable_files_stop_before_training(folder):
    with pytest.raises(DatasetError, match=r"2 of 15 files are unreadable") as err:
        ImageFolderDataset(folder, size=16)  # default max_bad_fraction 0.05
    assert "corrupt.jpg" in str(err.value) and "truncated.jpg" in str(err.value)


@pytest.fixture(scope="module")
def good_folder(folder, tmp_path_factory):
    """The readable colour images of ``folder`` only."""
    root = tmp_path_factory.mktemp("good")
    for name in ("cmyk.jpg", "rgba.png", "palette.gif", "tiny.png", "exif6.jpg"):
        shutil.copy(folder / name, root / name)
    save(root / "sub" / "big.jpg", colour_photo(120, 90, "coffee"), quality=95)
    return root


def test_items_are_uint8_squares_and_small_images_are_upscaled(good_folder):
    ds = ImageFolderDataset(good_folder, size=24, crop="random")
    tiny = [p.name for p in ds.files].index("tiny.png")
    for key in [(0, tiny), (3, tiny), 0, (1, 2)]:
        item = ds[key]
        assert item.dtype == torch.uint8 and item.shape == (3, 24, 24) and item.is_contiguous()
    # the 7 x 5 image upscaled to 34 x 24: still its colours, not black padding
    assert ds[(0, tiny)].float().mean() > 20


def test_same_epoch_and_index_give_the_same_crop_in_two_instances(good_folder):
    a = ImageFolderDataset(good_folder, size=16, seed=3)
    b = ImageFolderDataset(good_folder, size=16, seed=3)
    keys = [(e, i) for e in range(3) for i in range(len(a))]
    for key in keys:
        assert torch.equal(a[key], b[key])
    assert torch.equal(a[2], a[(0, 2)])
    differ = sum(not torch.equal(a[(0, i)], a[(1, i)]) for i in range(len(a)))
    assert differ >= len(a) - 1  # a new epoch draws new crops
    c = ImageFolderDataset(good_folder, size=16, seed=4)
    assert any(not torch.equal(a[k], c[k]) for k in keys)


def test_dataloader_with_two_workers_gives_the_same_batches_as_in_process(good_folder):
    ds = ImageFolderDataset(good_folder, size=16, seed=1)
    batches = [[(e, i) for i in range(len(ds))] for e in range(3)]

    def run(workers: int) -> list[torch.Tensor]:
        loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, num_workers=workers)
        return list(loader)

    in_process, two_workers = run(0), run(2)
    assert len(in_process) == 3
    for x, y in zip(in_process, two_workers):
        assert x.dtype == torch.uint8 and x.shape == (len(ds), 3, 16, 16)
        assert torch.equal(x, y)


def test_a_file_broken_after_screening_is_replaced_and_warned_once(good_folder, tmp_path, caplog):
    root = tmp_path / "copy"
    shutil.copytree(good_folder, root)
    ds = ImageFolderDataset(root, size=16)
    victim = ds.files.index(root / "palette.gif")
    (root / "palette.gif").write_bytes(b"broken now")
    with caplog.at_level(logging.WARNING, logger="gan_colorize.data.dataset"):
        first = ds[(0, victim)]
        again = ds[(0, victim)]
        ds[(1, victim)]
    assert first.shape == (3, 16, 16) and torch.equal(first, again)
    assert caplog.text.count("palette.gif") == 1


def test_random_resized_windows_follow_the_area_and_aspect_ranges():
    for i in range(300):
        rng = np.random.default_rng([0, 0, i])
        plan = draw_crop((200, 120), 32, rng, "random_resized", (0.3, 1.0), hflip=True)
        left, top, right, bottom = plan.box
        w, h = right - left, bottom - top
        assert left >= 0 and top >= 0 and right <= 200 and bottom <= 120
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02
        assert 0.3 - 0.02 <= w * h / (200 * 120) <= 1.0
    plan = draw_crop((7, 5), 16, np.random.default_rng(0), "random", (1, 1), hflip=False)
    left, top, right, bottom = plan.box  # a 16 px window of the image upscaled to 22 x 16, mapped back
    assert left >= 0 and right <= 7 and top == 0 and bottom == 5


def test_reduced_jpeg_decode_gives_nearly_the_crop_of_the_full_decode(tmp_path):
    path = tmp_path / "photo.jpg"
    save(path, colour_photo(256, 192, "coffee"), quality=95)
    full = Image.fromarray(load_rgb(path))
    for i in range(5):
        plan = draw_crop(full.size, 32, np.random.default_rng(i), "random_resized", (0.5, 1.0), True)
        assert plan.decode_size() is not None
        with ImageReader(path) as reader:
            reduced = reader.decode(plan.decode_size())
            scale = reader.scale
        assert scale < 1
        a = np.asarray(plan.apply(full)).astype(int)
        b = np.asarray(plan.apply(reduced, scale)).astype(int)
        assert np.abs(a - b).mean() < 4  # same region; only the decoding's resampling differs


# ---------------------------------------------------------------- builtin:skimage
def test_builtin_skimage_loads_offline_and_holds_chelsea_out(no_network):
    train = BuiltinSkimage("train", 32, crops_per_epoch=10, seed=0)
    assert BUILTIN_EVAL == ("chelsea",) and "chelsea" not in BUILTIN_TRAIN
    chelsea = skdata.chelsea()
    assert len(train.photos) == 5
    for photo in train.photos:
        arr = np.asarray(photo)
        assert arr.shape != chelsea.shape or not np.array_equal(arr, chelsea)
    assert len(train) == 10
    item = train[(2, 7)]
    assert item.dtype == torch.uint8 and item.shape == (3, 32, 32)
    assert torch.equal(item, BuiltinSkimage("train", 32, crops_per_epoch=10, seed=0)[(2, 7)])
    evaluation = BuiltinSkimage("eval", 32)
    assert len(evaluation) == 24  # shorter side 4 x 32 = 128: 300 x 451 -> 128 x 192: 4 rows, 6 cols
    first = evaluation[0]
    assert first["name"] == "chelsea_r0c0" and first["rgb"].shape == (3, 32, 32)
    big = Image.fromarray(chelsea).resize((192, 128), Image.Resampling.BICUBIC)
    assert np.array_equal(first["rgb"].permute(1, 2, 0).numpy(), np.asarray(big)[:32, :32])
    single = BuiltinSkimage("eval", 32, eval_view="protocol")
    assert len(single) == 1
    expected = np.asarray(eval_transform(Image.fromarray(chelsea), 32))
    assert np.array_equal(single[0]["rgb"].permute(1, 2, 0).numpy(), expected)


def test_build_datasets_builtin_and_default_collate(no_network):
    cfg = DataConfig(train="builtin:skimage", size=16, crops_per_epoch=12)
    train, evaluation = build_datasets(cfg, seed=5)
    assert len(train) == 12 and len(evaluation) == 24  # chelsea at a shorter side of 64: 64 x 96, 4 x 6
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=4)))
    assert batch.dtype == torch.uint8 and batch.shape == (4, 3, 16, 16)
    eval_batch = next(iter(torch.utils.data.DataLoader(evaluation, batch_size=3)))
    assert eval_batch["rgb"].shape == (3, 3, 16, 16) and eval_batch["name"][0] == "chelsea_r0c0"


# ---------------------------------------------------------------- evaluation images
def reference_eval(path, size: int) -> np.ndarray:
    """The protocol computed by hand: shorter side to size (bicubic), centre crop."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    if w <= h:
        new = (size, round(h * size / w))
    else:
        new = (round(w * size / h), size)
    img = img.resize(new, Image.Resampling.BICUBIC)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return np.asarray(img)[top : top + size, left : left + size]


def test_eval_images_follow_the_protocol_and_have_unique_names(tmp_path):
    root = tmp_path / "eval"
    save(root / "wide.png", colour_photo(90, 50, "coffee"))
    save(root / "tall.png", colour_photo(41, 77, "rocket"))
    save(root / "same.png", colour_photo(30, 30))
    save(root / "same.jpg", colour_photo(30, 30), quality=95)
    save(root / "deeper" / "x.png", colour_photo(25, 20))  # smaller than 24: upscaled to 30 x 24
    images = EvalImages(str(root), 24)
    names = images.names
    assert len(set(names)) == len(names) == 5
    assert {"same_png", "same_jpg", "deeper__x", "wide", "tall"} == set(names)
    for i, path in enumerate(images.files):
        item = images[i]
        assert item["name"] == names[i]
        assert np.array_equal(item["rgb"].permute(1, 2, 0).numpy(), reference_eval(path, 24))


def test_eval_names_stay_distinct_where_extensions_and_folders_collide(tmp_path):
    root = tmp_path / "eval"
    for name in ("x.jpg", "x.JPG", "a/b.jpg", "a__b.jpg", "y.jpg", "y_jpg.png"):
        save(root / name, colour_photo(30, 30), quality=95)
    if len(list(root.iterdir())) < 5:  # a case-insensitive file system keeps one x
        pytest.skip("x.jpg and x.JPG are one file here")
    images = EvalImages(str(root), 24)
    assert len(set(images.names)) == len(images.names) == 6
    assert images.names == EvalImages(str(root), 24).names  # the same names every time


def test_eval_images_screen_like_training(folder):
    images = EvalImages(str(folder), 16, max_bad_fraction=0.5)
    assert {p.name for p, _ in images.screening.skipped} == UNREADABLE
    assert not {p.name for p in images.files} & GREYSCALE
    with pytest.raises(DatasetError, match="unreadable"):
        EvalImages(str(folder), 16)


def test_build_datasets_folder_holds_out_a_stable_disjoint_share(good_folder):
    cfg = DataConfig(train=str(good_folder), size=16, eval_fraction=0.5)
    train, evaluation = build_datasets(cfg, seed=0)
    assert not set(train.files) & set(evaluation.files)
    assert len(train) + len(evaluation) == 6
    every = list_image_files(good_folder)
    expected_eval = {p for p in every if in_eval_split(p.relative_to(good_folder).as_posix(), 0.5)}
    assert set(evaluation.files) == expected_eval


# ---------------------------------------------------------------- data inspect
def test_data_inspect_json_counts(folder, capsys):
    from gan_colorize.cli import main

    # issue #10 item 11: training would refuse this folder, so the command does not exit 0
    assert main(["data", "inspect", str(folder), "--json"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 15 and summary["readable"] == 13
    assert {u["file"] for u in summary["unreadable"]} == UNREADABLE
    assert {g["file"] for g in summary["greyscale"]} == GREYSCALE
    # no file falls in the 5 % hash split: as in training, the first usable one is shared
    assert summary["usable"] == summary["training"] == 10 and summary["held_out"] == ["cmyk.jpg"]
    assert summary["modes"]["CMYK"] == 1 and summary["modes"]["P"] == 3 and summary["modes"]["I;16"] == 1
    assert summary["bits"]["16"] == 1
    assert summary["width"]["min"] == 7 and summary["height"]["min"] == 5
    # 2 of 15 unreadable is more than the default max_bad_fraction: training would not start
    assert "2 of 15 files are unreadable" in summary["training_would_stop"]


def test_data_inspect_says_what_training_would_do_at_the_edges(folder, capsys):
    from gan_colorize.cli import main

    argv = ["data", "inspect", str(folder), "--json", "--max-bad-fraction", "0.5", "--eval-fraction", "1"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert "training_would_stop" not in summary
    # everything held out: training uses every usable file too, as build_datasets does
    assert summary["training"] == summary["usable"] == len(summary["held_out"]) == 10
    assert "share images" in summary["split_rule"]


def test_data_inspect_human_output_and_missing_path(folder, capsys):
    from gan_colorize.cli import main

    assert main(["data", "inspect", str(folder)]) == 1  # 2 of 15 unreadable: training would stop
    out = capsys.readouterr().out
    assert "refuses to start" in " ".join(out.split())  # rich wraps long lines
    assert "truncated.jpg" in out and "nochroma.png" in out
    assert main(["data", "inspect", str(folder / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_file_list_cache_option_also_remembers_the_screening(good_folder, tmp_path, monkeypatch):
    import gan_colorize.data.index as index_mod

    root = tmp_path / "tree"
    shutil.copytree(good_folder, root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cfg = DataConfig(train=str(root), size=16, eval_fraction=0.3, file_list_cache=True, screening="full")
    first_train, first_eval = build_datasets(cfg)
    assert files_mod.default_cache_path(root).is_file()
    assert files_mod.default_cache_path(root, "index").is_file()

    real_probe = index_mod.probe_file
    probed = []
    monkeypatch.setattr(index_mod, "probe_file", lambda p: probed.append(Path(p).name) or real_probe(p))
    train, evaluation = build_datasets(cfg)
    assert probed == [] and train.files == first_train.files and evaluation.files == first_eval.files

    (root / "tiny.png").write_bytes(b"now broken")  # same folder entries, new size: probed again
    with pytest.raises(DatasetError, match="tiny.png"):
        build_datasets(cfg)
    assert probed == ["tiny.png"]

    # damaged, then restored, each time with the original size and mtime (as rsync -t leaves
    # them): the ctime changes all the same, so each state is probed, never served from the cache
    good = (good_folder / "tiny.png").read_bytes()
    stat = os.stat(good_folder / "tiny.png")
    for content, readable in ((b"\0" * len(good), False), (good, True)):
        (root / "tiny.png").write_bytes(content)
        os.utime(root / "tiny.png", ns=(stat.st_atime_ns, stat.st_mtime_ns))
        probed.clear()
        if readable:
            train, evaluation = build_datasets(cfg)
            assert train.files == first_train.files and evaluation.files == first_eval.files
        else:
            with pytest.raises(DatasetError, match="tiny.png"):
                build_datasets(cfg)
        assert probed == ["tiny.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_with_an_image_name_is_skipped_not_opened(tmp_path, caplog):
    save(tmp_path / "a.png", colour_photo(8, 8))
    os.mkfifo(tmp_path / "pipe.jpg")  # opening it for reading would block forever
    with caplog.at_level(logging.WARNING):
        assert rel_names(list_image_files(tmp_path), tmp_path) == {"a.png"}
    assert "pipe.jpg: not a regular file" in caplog.text


def test_a_folder_that_cannot_be_listed_is_an_error_naming_it(tmp_path, monkeypatch):
    save(tmp_path / "a.png", colour_photo(8, 8))
    save(tmp_path / "locked" / "b.png", colour_photo(8, 8))
    real_scandir = os.scandir

    def refuse_locked(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(files_mod.os, "scandir", refuse_locked)
    with pytest.raises(FileNotFoundError, match="cannot list folder .*locked: Permission denied"):
        list_image_files(tmp_path)


def test_a_link_aliasing_a_folder_never_decides_the_paths(tmp_path):
    # 'alias' sorts before 'real': the real folder must still give the files their paths
    save(tmp_path / "real" / "x.png", colour_photo(8, 8))
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "loop").symlink_to(tmp_path, target_is_directory=True)
    assert rel_names(list_image_files(tmp_path), tmp_path) == {"real/x.png"}


# ---------------------------------------------------------------- the training stream, builtin inspect
def test_training_stream_gives_the_same_batches_with_two_workers_and_on_resume(good_folder):
    """``gan_colorize.training.stream`` as training uses it: 0 or 2 loader workers, or a stream
    restarted at batch 2, give identical batches (across epoch boundaries: 6 files, 4 per batch)."""
    from gan_colorize.training.stream import StreamBatchSampler, make_loader

    ds = ImageFolderDataset(good_folder, size=16, seed=2)

    def batches(workers: int, start_batch: int = 0, n: int = 4) -> list[torch.Tensor]:
        sampler = StreamBatchSampler(len(ds), 4, rank=0, world_size=1, seed=2, start_batch=start_batch)
        it = iter(make_loader(ds, sampler, workers, pin_memory=False))
        return [next(it) for _ in range(n)]

    no_workers, two_workers = batches(0), batches(2)
    for a, b in zip(no_workers, two_workers):
        assert a.dtype == torch.uint8 and a.shape == (4, 3, 16, 16) and torch.equal(a, b)
    resumed = batches(2, start_batch=2, n=2)
    assert torch.equal(resumed[0], no_workers[2]) and torch.equal(resumed[1], no_workers[3])


def test_data_inspect_builtin_reports_six_photos_and_the_held_out_one(capsys, no_network):
    from gan_colorize.cli import main

    assert main(["data", "inspect", "builtin:skimage", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == summary["readable"] == summary["usable"] == 6
    assert summary["held_out"] == ["chelsea"] and summary["training"] == 5
    assert summary["greyscale"] == [] and summary["unreadable"] == []
    assert summary["width"]["min"] == 451 and summary["height"]["min"] == 300  # chelsea, 451 x 300


def test_a_folder_of_greyscale_photos_says_so_with_the_counts(tmp_path):
    for i in range(3):
        grey = np.asarray(Image.fromarray(colour_photo(30, 30)).convert("L"))
        save(tmp_path / f"grey{i}.png", np.stack([grey] * 3, axis=2))
    expected = r"no usable colour image among 3 files \(3 greyscale, 0 unreadable\)"
    with pytest.raises(DatasetError, match=expected):
        build_datasets(DataConfig(train=str(tmp_path), size=16, screening="full"), seed=0)
    # headers only: RGB files that look grey are found by the held-out set's full screening
    with pytest.raises(DatasetError, match=r"\(evaluation\): no usable colour image .*1 greyscale"):
        build_datasets(DataConfig(train=str(tmp_path), size=16), seed=0)


def test_an_empty_file_and_a_broken_link_are_named_for_what_they_are(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "moved_away.jpg")
    with pytest.raises(BadImageError, match=r"empty.jpg: empty file \(0 bytes\)"):
        ImageReader(tmp_path / "empty.jpg")
    with pytest.raises(BadImageError, match=r"gone.jpg: broken symbolic link \(to .*moved_away.jpg"):
        ImageReader(tmp_path / "gone.jpg")
