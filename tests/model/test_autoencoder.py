"""The causal video autoencoder: layout, causality, streaming decode."""
import pytest
import torch

from model.autoencoder import PRESETS, StreamingDecoder, VideoAutoencoder


@pytest.fixture()
def ae():
    m = VideoAutoencoder(PRESETS["tiny"]).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def test_latent_layout(ae):
    x = torch.randn(2, 9, 3, 32, 32)
    z = ae.encode(x)
    assert z.shape == (2, 3, ae.config.latent_channels, 4, 4)       # 1 + 8 / 4 latent frames, 8x smaller
    assert ae.decode(z).shape == x.shape
    with pytest.raises(ValueError):
        ae.encode(torch.randn(1, 8, 3, 32, 32))


def test_encoding_is_causal(ae):
    x = torch.randn(1, 9, 3, 32, 32)
    y = x.clone()
    y[:, 5:] += 1.0                                                  # change the second chunk only
    with torch.no_grad():
        a, b = ae.encode(x), ae.encode(y)
    assert torch.allclose(a[:, :2], b[:, :2])
    assert not torch.allclose(a[:, 2], b[:, 2])


def test_first_frame_is_coded_alone(ae):
    x = torch.randn(1, 5, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ae.encode(x)[:, 0], ae.encode_image(x[:, 0]))


def test_streaming_decode_equals_whole_clip(ae):
    z = torch.randn(1, 4, ae.config.latent_channels, 4, 4)
    with torch.no_grad():
        whole = ae.decode(z)
        dec = StreamingDecoder(ae)
        parts = torch.cat([dec(z[:, i]) for i in range(4)], 1)
    assert parts.shape == whole.shape == (1, 13, 3, 32, 32)
    assert (parts - whole).abs().max().item() < 1e-5


def test_normalisation_round_trip():
    cfg = PRESETS["tiny"]
    from model.config import replace

    ae = VideoAutoencoder(replace(cfg, latent_mean=[0.5] * 8, latent_std=[2.0] * 8))
    z = torch.randn(2, 8, 4, 4)
    assert torch.allclose(ae.denormalize(ae.normalize(z)), z, atol=1e-6)
    assert torch.allclose(ae.normalize(z), (z - 0.5) / 2)
