"""Model discovery and the shared-weights store."""
import json
import shutil

from app.models import ModelStore, discover


def test_discovers_modes_and_resolutions(tiny_assets):
    found = {m.name: m for m in discover(tiny_assets)}
    assert found["world-tiny"].mode == "world" and found["avatar-tiny"].mode == "avatar"
    assert found["world-tiny"].resolution == 32 and found["world-tiny"].label == "world-tiny · 32 px"


def test_broken_or_partial_folders_are_skipped(tiny_assets, tmp_path):
    root = tmp_path / "assets"
    shutil.copytree(tiny_assets / "world-tiny", root / "good")
    (root / "teacher-only" / "autoencoder").mkdir(parents=True)            # no generator
    shutil.copytree(tiny_assets / "world-tiny", root / "broken")
    (root / "broken" / "generator" / "config.json").write_text("{not json")
    shutil.copytree(tiny_assets / "world-tiny", root / "odd")
    cfg = json.loads((root / "odd" / "generator" / "config.json").read_text())
    cfg["control"] = "none"
    (root / "odd" / "generator" / "config.json").write_text(json.dumps(cfg))
    (root / "a-file").write_text("x")
    assert [m.name for m in discover(root)] == ["good"]
    assert discover(tmp_path / "missing") == []


def test_the_repo_assets_without_generators_offer_no_mode():
    from app.models import DEFAULT_ASSETS
    for m in discover(DEFAULT_ASSETS):
        assert (m.path / "generator" / "config.json").is_file()


def test_engines_share_weights_but_not_state(tiny_assets):
    store = ModelStore(discover(tiny_assets))
    info = store.get(None, "world")
    a, b = store.engine(info), store.engine(info)
    assert a.dit is b.dit and a.cache is not b.cache and a.decoder is not b.decoder
    assert store.get("nonsense", "avatar").mode == "avatar"
    assert ModelStore([]).get(None, "world") is None


def test_the_store_recycles_latents_or_the_frames_shown(tiny_assets):
    """``recycle="pixels"`` gives engines that recycle the frames shown (PixelLoop), ``latent`` engines
    that recycle their own latents, ``auto`` (the default) the frames for camera models and the latent
    for pose models; anything else is refused."""
    import numpy as np
    import pytest

    with pytest.raises(ValueError, match="pixels"):
        ModelStore([], recycle="frames")
    for recycle, mode, reencode in (("latent", "world", False), ("pixels", "world", True), ("pixels", "avatar", True),
                                    ("auto", "world", True), ("auto", "avatar", False)):
        store = ModelStore(discover(tiny_assets), recycle=recycle)
        e = store.engine(store.get(None, mode))
        e.reset(np.full((32, 32, 3), 100, np.uint8))
        e.step(np.zeros(7) if mode == "world" else np.tile([0.5, 0.5, 0.0, 1.0], (33, 1)))
        assert e.reencode is reencode and (e.loop is not None) is reencode
    assert ModelStore([]).recycle == "auto"
