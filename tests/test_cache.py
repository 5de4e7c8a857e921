"""The decoded-image cache: decoded once, memory-mapped after, rebuilt when a file changes or is
added, never trusted half-written, the same whether one process decodes or several."""

import json
import os

import numpy as np
import pytest

import kit.competition.decode as decode
from kit.competition import load_competition
from kit.competition.spec import ClassFoldersSpec, LabelsCsvSpec
from kit.errors import DataError
from kit.progress import Reporter

from . import competitions


@pytest.fixture(autouse=True)
def _cache_beside_the_data(monkeypatch):
    monkeypatch.delenv("KIT_CACHE", raising=False)


def _spec(root, **fields):
    return LabelsCsvSpec(**{"name": "tiny", "root": root, **fields})


def test_second_load_memory_maps_without_decoding(tmp_path, monkeypatch):
    competitions.labels_csv(tmp_path)
    first = load_competition(_spec(tmp_path))
    assert first.decoded and first.cache_folder == tmp_path / ".kit-cache" / "native-auto"
    meta = json.loads((first.cache_folder / "meta.json").read_text())
    assert meta["train_shape"] == [8, 8, 8, 3] and meta["test_shape"] == [3, 8, 8, 3]

    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was opened although the cache is valid")

    monkeypatch.setattr(decode.Image, "open", no_decoding)
    second = load_competition(_spec(tmp_path))
    assert not second.decoded and isinstance(second.train_images, np.memmap)
    np.testing.assert_array_equal(second.train_images, first.train_images)
    assert second.fingerprint == first.fingerprint  # from meta.json, without reading the images


def test_a_changed_image_invalidates_the_cache_and_the_fingerprint(tmp_path):
    competitions.labels_csv(tmp_path)
    before = load_competition(_spec(tmp_path))
    new_pixels = competitions.images(1, seed=9)[0]
    competitions.save(tmp_path / "train" / "im4.png", new_pixels)
    after = load_competition(_spec(tmp_path))
    assert after.decoded
    np.testing.assert_array_equal(after.train_images[4], new_pixels)
    assert after.fingerprint != before.fingerprint
    # the same bytes again: a new decode (the file's time changed) but the same fingerprint
    os.utime(tmp_path / "train" / "im4.png", ns=(1, 1))
    again = load_competition(_spec(tmp_path))
    assert again.decoded and again.fingerprint == after.fingerprint


def test_an_added_image_invalidates_the_cache(tmp_path):
    competitions.class_folders(tmp_path)
    spec = ClassFoldersSpec(name="tiny", root=tmp_path, sample_submission=None)
    assert len(load_competition(spec).train_ids) == 9
    competitions.save(tmp_path / "train" / "n01" / "img9.png", competitions.images(1, seed=7)[0])
    data = load_competition(spec)
    assert data.decoded and len(data.train_ids) == 10 and data.train_images.shape[0] == 10


def test_a_killed_decode_leaves_nothing_that_is_trusted(tmp_path, monkeypatch):
    competitions.labels_csv(tmp_path)
    load_competition(_spec(tmp_path))
    competitions.save(tmp_path / "train" / "im0.png", competitions.images(1, seed=8)[0])
    real = decode.decode_chunk

    def dies_halfway(target, offset, paths, *args):
        real(target, offset, paths[:1], *args)
        raise KeyboardInterrupt  # the user pressing Ctrl-C (or a kill) in the middle of a decode

    monkeypatch.setattr(decode, "decode_chunk", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        load_competition(_spec(tmp_path))
    folder = tmp_path / ".kit-cache" / "native-auto"
    assert not list(folder.glob("*.tmp"))  # no temporary file left behind
    monkeypatch.setattr(decode, "decode_chunk", real)
    data = load_competition(_spec(tmp_path))
    assert data.decoded  # the old cache was not taken for the changed file
    np.testing.assert_array_equal(data.train_images[0], competitions.images(1, seed=8)[0])


def test_a_damaged_cache_file_is_rebuilt(tmp_path):
    competitions.labels_csv(tmp_path)
    folder = load_competition(_spec(tmp_path)).cache_folder
    (folder / "train.npy").write_bytes((folder / "train.npy").read_bytes()[:100])
    assert load_competition(_spec(tmp_path)).decoded


def test_parallel_decode_matches_one_process_and_reports_progress(tmp_path, monkeypatch):
    competitions.labels_csv(tmp_path, labels=("cat", "dog") * 40, n_test=10)
    one = load_competition(_spec(tmp_path), workers=1)
    events = []

    class Recorder(Reporter):
        def start(self, key, description, total):
            events.append(("start", key, total))

        def advance(self, key, steps=1, description=None):
            events.append(("advance", key, steps))

    monkeypatch.setattr(decode, "MIN_PARALLEL", 0)  # a pool even for 90 images
    many = load_competition(_spec(tmp_path, channels=3), workers=2, reporter=Recorder())
    assert many.decoded and many.cache_folder.name == "native-3ch"  # its own slot: other settings
    np.testing.assert_array_equal(many.train_images, one.train_images)
    np.testing.assert_array_equal(many.test_images, one.test_images)
    assert many.fingerprint == one.fingerprint
    assert events[0] == ("start", "decode", 90)
    assert sum(e[2] for e in events if e[0] == "advance") == 90


def test_a_corrupt_image_in_a_worker_is_named(tmp_path, monkeypatch):
    competitions.labels_csv(tmp_path, labels=("cat", "dog") * 40)
    (tmp_path / "train" / "im57.png").write_bytes(b"not an image at all")
    monkeypatch.setattr(decode, "MIN_PARALLEL", 0)
    with pytest.raises(DataError, match=r"train/im57.png: not a readable image"):
        load_competition(_spec(tmp_path), workers=2)
    assert not (tmp_path / ".kit-cache" / "native-auto" / "meta.json").exists()


def test_each_decode_size_has_its_own_slot_and_kit_cache_moves_them(tmp_path, monkeypatch):
    competitions.labels_csv(tmp_path / "comp")
    monkeypatch.setenv("KIT_CACHE", str(tmp_path / "cache"))
    small = load_competition(_spec(tmp_path / "comp", image_size=4))
    large = load_competition(_spec(tmp_path / "comp", image_size=16))
    assert small.cache_folder.parent == large.cache_folder.parent
    assert small.cache_folder.parent.parent == tmp_path / "cache"
    assert {small.cache_folder.name, large.cache_folder.name} == {"4px-auto", "16px-auto"}
    assert not load_competition(_spec(tmp_path / "comp", image_size=4)).decoded
    assert not (tmp_path / "comp" / ".kit-cache").exists()
    # a subset of the same files (another competition name) finds the same decoded images
    assert not load_competition(_spec(tmp_path / "comp", name="tiny-4", train_subset=4, image_size=4)).decoded


def test_a_mixed_size_found_while_decoding_falls_back_like_one_found_by_the_probe(tmp_path):
    # 40 images: the probe reads 16 of them, not im1, so a decoding worker is the one to find it
    competitions.labels_csv(tmp_path, labels=("cat", "dog") * 20)
    competitions.save(tmp_path / "train" / "im1.png", competitions.images(1, 12)[0])
    with pytest.raises(DataError, match=r"train/im1.png: 12x12 pixels where the other images are 8x8; "
                                        r"images of mixed sizes need an image_size"):
        load_competition(_spec(tmp_path))
    data = load_competition(_spec(tmp_path), image_size=6)
    assert data.decoded and data.cache_folder.name == "6px-auto" and data.train_images.shape == (40, 6, 6, 3)


def test_decode_false_never_decodes_a_missing_cache(tmp_path):
    """What a report's thumbnails ask for: the cache if it is there, else a DataError naming the fix."""
    competitions.labels_csv(tmp_path)
    with pytest.raises(DataError, match="not decoded .*kit prepare decodes them"):
        load_competition(_spec(tmp_path), decode=False)
    assert not (tmp_path / ".kit-cache" / "native-auto" / "meta.json").exists()
    load_competition(_spec(tmp_path))
    again = load_competition(_spec(tmp_path), decode=False)
    assert not again.decoded and isinstance(again.train_images, np.memmap)
