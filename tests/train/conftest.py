"""A tiny rendered dataset shared by the training tests (32 px world clips)."""
import pytest

from data.build import build


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-data")
    build("world", "train", clips=6, n_frames=21, size=32, out=str(root), per_shard=3, workers=1)
    build("world", "val", clips=2, n_frames=21, size=32, out=str(root), per_shard=2, workers=1)
    return root
