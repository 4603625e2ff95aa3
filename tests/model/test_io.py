"""Model files: config.json + model.safetensors, exact round trip, clear errors."""
import json

import pytest
import torch

from model.autoencoder import PRESETS as AE_PRESETS
from model.autoencoder import VideoAutoencoder
from model.dit import PRESETS, VideoDiT
from model.discriminator import Discriminator
from model.io import ModelFileError


def test_round_trip_is_exact(tmp_path):
    m = VideoDiT(PRESETS["tiny"])
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    m.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    n = VideoDiT.from_pretrained(tmp_path / "m")
    assert n.config == m.config
    for (k, a), (_, b) in zip(m.state_dict().items(), n.state_dict().items()):
        assert torch.equal(a, b), k


def test_nested_config_round_trip(tmp_path):
    d = Discriminator.from_generator(VideoDiT(PRESETS["tiny"]))
    d.save_pretrained(tmp_path / "d")
    e = Discriminator.from_pretrained(tmp_path / "d")
    assert e.config == d.config


def test_missing_file(tmp_path):
    VideoAutoencoder(AE_PRESETS["tiny"]).save_pretrained(tmp_path / "ae")
    (tmp_path / "ae" / "model.safetensors").unlink()
    with pytest.raises(ModelFileError, match="missing model.safetensors"):
        VideoAutoencoder.from_pretrained(tmp_path / "ae")


def test_truncated_weights(tmp_path):
    VideoAutoencoder(AE_PRESETS["tiny"]).save_pretrained(tmp_path / "ae")
    w = tmp_path / "ae" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    with pytest.raises(ModelFileError, match="unreadable"):
        VideoAutoencoder.from_pretrained(tmp_path / "ae")


def test_config_that_does_not_match_the_weights(tmp_path):
    VideoDiT(PRESETS["tiny"]).save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["dim"] = 48
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="shape"):
        VideoDiT.from_pretrained(tmp_path / "m")


def test_unknown_config_key(tmp_path):
    VideoDiT(PRESETS["tiny"]).save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["colour"] = "blue"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="unknown keys"):
        VideoDiT.from_pretrained(tmp_path / "m")
