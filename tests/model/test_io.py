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
    from safetensors import safe_open
    with safe_open(str(tmp_path / "m" / "model.safetensors"), "pt") as f:    # the config rides in the header
        assert json.loads(f.metadata()["config"])["dim"] == m.config.dim and f.metadata()["class"] == "VideoDiT"
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
    with pytest.raises(ModelFileError, match="shape") as e:
        VideoDiT.from_pretrained(tmp_path / "m")
    # the message names the mismatch: the config field as config.json has it and as the weights were saved
    assert "config.json says dim=48 but the weights were saved with dim=32" in str(e.value)
    assert str(tmp_path) not in str(e.value)


def test_weights_of_another_model_class(tmp_path):
    VideoAutoencoder(AE_PRESETS["tiny"]).save_pretrained(tmp_path / "ae")
    with pytest.raises(ModelFileError, match="holds a VideoAutoencoder, not a VideoDiT"):
        VideoDiT.from_pretrained(tmp_path / "ae")


def test_config_that_cannot_be_built(tmp_path):
    VideoDiT(PRESETS["tiny"]).save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["dim"] = -4
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="describes a model that cannot be built"):
        VideoDiT.from_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_bytes(b"\xff\xfe{")          # not even text
    with pytest.raises(ModelFileError, match="bad config.json"):
        VideoDiT.from_pretrained(tmp_path / "m")


class _Trap:
    """Unpickling this creates a folder: proof that something ran pickle.load."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os
        return os.mkdir, (self.marker,)


def test_pickles_are_never_loaded(tmp_path):
    import pickle

    VideoAutoencoder(AE_PRESETS["tiny"]).save_pretrained(tmp_path / "ae")
    trap = pickle.dumps({"state_dict": _Trap(tmp_path / "unpickled")})
    (tmp_path / "ae" / "model.safetensors").write_bytes(trap)              # a pickle under the expected name
    with pytest.raises(ModelFileError, match="unreadable model.safetensors"):
        VideoAutoencoder.from_pretrained(tmp_path / "ae")
    (tmp_path / "ae" / "model.safetensors").unlink()
    (tmp_path / "ae" / "pytorch_model.bin").write_bytes(trap)              # a torch.save checkpoint beside it
    with pytest.raises(ModelFileError, match="missing model.safetensors"):
        VideoAutoencoder.from_pretrained(tmp_path / "ae")
    assert not (tmp_path / "unpickled").exists()


def test_no_source_file_loads_pickles():
    """No torch.load, pickle, joblib or allow_pickle=True anywhere in the project's code (tests aside)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    banned = re.compile(r"\btorch\.load\s*\(|^\s*(?:import|from)\s+(?:c?pickle|dill|cloudpickle|joblib|shelve)\b"
                        r"|\bpickle\.(?:loads?|Unpickler)\b|allow_pickle\s*=\s*True|weights_only\s*=\s*False", re.M)
    files = [p for d in ("app", "bench", "controls", "data", "eval", "model", "train") for p in (root / d).rglob("*.py")]
    assert len(files) > 30
    found = [f"{p.relative_to(root)}: {m.group(0).strip()}" for p in files for m in banned.finditer(p.read_text())]
    assert found == []


def test_unknown_config_key(tmp_path):
    VideoDiT(PRESETS["tiny"]).save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["colour"] = "blue"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError, match="unknown keys"):
        VideoDiT.from_pretrained(tmp_path / "m")
