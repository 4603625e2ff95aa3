"""Shards: clips and their ground truth survive a write/read round trip; builds resume."""
import json

import numpy as np
import pytest

import data.sources
from data.build import build
from data.clip import Clip
from data.shards import ShardReader, write_shard


def _clip(seed: int, F: int = 5, H: int = 12, W: int = 16, person: bool = False) -> Clip:
    rng = np.random.default_rng(seed)
    return Clip(frames=rng.integers(0, 256, (F, H, W, 3), dtype=np.uint8),
                controls=rng.normal(size=(F, 7)).astype(np.float32),
                K=rng.normal(size=(F, 3, 3)).astype(np.float32),
                w2c=rng.normal(size=(F, 4, 4)).astype(np.float32),
                landmarks=rng.random((F, 33, 4)).astype(np.float32) if person else None,
                mask=rng.integers(0, 2, (F, H, W), dtype=np.uint8) if person else None,
                meta={"source": "fake", "seed": seed, "note": "äö"})


@pytest.mark.parametrize("person", [False, True])
def test_round_trip(tmp_path, person):
    clips = [_clip(s, person=person) for s in range(3)]
    write_shard(tmp_path / "fake-00000", clips[:2])
    write_shard(tmp_path / "fake-00001", clips[2:])
    reader = ShardReader(tmp_path)
    assert len(reader) == 3 and reader.frame_shape == (5, 12, 16, 3)
    for want, got in zip(clips, reader):
        assert got.frames.tobytes() == want.frames.tobytes() and got.meta == want.meta
        for name in ("controls", "K", "w2c", "landmarks", "mask"):
            a, b = getattr(want, name), getattr(got, name)
            assert (a is None and b is None) or (b.dtype == a.dtype and np.array_equal(a, b)), name
    assert not list(tmp_path.glob("*.tmp*"))


def test_mixed_shapes_rejected(tmp_path):
    with pytest.raises(ValueError):
        write_shard(tmp_path / "bad", [_clip(0), _clip(1, H=8)])


def test_interrupted_build_resumes(tmp_path, monkeypatch):
    calls = []

    def fake(seed: int, n_frames: int, size: int) -> Clip:
        calls.append(seed)
        return _clip(seed, F=n_frames, H=size, W=size)

    monkeypatch.setitem(data.sources.SOURCES, "fake", fake)
    root = build("fake", "val", clips=4, n_frames=3, size=8, out=str(tmp_path), per_shard=2, workers=1)
    assert calls == [1_000_000, 1_000_001, 1_000_002, 1_000_003]
    # an interruption: shard 1 was being written (no .json marker yet) when the build stopped
    (root / "fake-00001.json").rename(root / "fake-00001.tmp.json")
    calls.clear()
    build("fake", "val", clips=6, n_frames=3, size=8, out=str(tmp_path), per_shard=2, workers=1)
    assert calls == [1_000_002, 1_000_003, 1_000_004, 1_000_005]  # only shards 1 and 2
    reader = ShardReader(root)
    assert [reader.meta(i)["seed"] for i in range(len(reader))] == [1_000_000 + i for i in range(6)]
    assert json.loads((root / "fake-00000.json").read_text())[0]["seed"] == 1_000_000


def test_several_roots_read_as_one_mix_in_order(tmp_path):
    a, b = tmp_path / "world", tmp_path / "photo"
    write_shard(a / "w-00000", [_clip(0), _clip(1)])
    write_shard(b / "p-00000", [_clip(2)])
    for reader in (ShardReader(f"{a},{b}"), ShardReader([a, b])):
        assert len(reader) == 3
        assert [reader.meta(i)["seed"] for i in range(3)] == [0, 1, 2]
    with pytest.raises(FileNotFoundError, match="no shards"):
        ShardReader(f"{tmp_path / 'none'},{tmp_path / 'nothing'}")
