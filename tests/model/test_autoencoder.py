"""The causal video autoencoder: layout, causality, streaming decode."""
import pytest
import torch

from dataclasses import replace

from model.autoencoder import PRESETS, StreamingDecoder, VideoAutoencoder, transfer_autoencoder


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


def test_transfer_to_more_latent_channels_decodes_the_same(ae):
    """A wider autoencoder started from a trained one reconstructs exactly as it does (the new
    channels' decoder columns are zero), its old channels encode the same, and training can use
    the new channels (a nudge of their decoder columns changes the output)."""
    wide = VideoAutoencoder(replace(PRESETS["tiny"], latent_channels=2 * ae.config.latent_channels)).eval()
    assert transfer_autoencoder(wide, ae) == []
    x = torch.randn(1, 9, 3, 32, 32)
    C = ae.config.latent_channels
    with torch.no_grad():
        z, zw = ae.encode(x), wide.encode(x)
        assert torch.allclose(zw[:, :, :C], z, atol=1e-6)
        assert zw[:, :, C:].abs().max() > 1e-3                      # the new channels carry something
        assert torch.allclose(wide.decode(zw), ae.decode(z), atol=1e-5)
        wide.decoder.conv_in.weight[:, C:2 * C] += 0.1
        assert (wide.decode(zw) - ae.decode(z)).abs().max() > 1e-3


def test_transfer_to_fewer_frames_per_latent_is_the_slow_motion_of_the_old(ae):
    """An autoencoder packing 2 frames per latent, started from a 4-frame one, encodes a video as
    the old one encodes it with every new frame doubled, and decodes each frame as the mean of
    the old one's two frames for it."""
    half = VideoAutoencoder(replace(ae.config, frames_per_latent=2)).eval()
    assert transfer_autoencoder(half, ae) == []
    x = torch.randn(1, 5, 3, 32, 32)                                   # 1 + 2 x 2 frames
    slow = torch.cat([x[:, :1], x[:, 1:].repeat_interleave(2, 1)], 1)  # 1 + 4 x 2 frames
    with torch.no_grad():
        z = half.encode(x)
        torch.testing.assert_close(z, ae.encode(slow), atol=1e-5, rtol=1e-4)
        pair = torch.cat([z[:, 2], z[:, 1]], 1)                        # [z_k | z_k-1]
        old = ae.decoder(pair)                                         # (1, 4, 3, H, W)
        torch.testing.assert_close(half.decoder(pair), old.unflatten(1, (2, 2)).mean(2), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="divide"):
        transfer_autoencoder(VideoAutoencoder(replace(ae.config, frames_per_latent=3)), ae)


def test_transfer_needs_the_same_layers(ae):
    with pytest.raises(ValueError, match="same layers"):
        transfer_autoencoder(VideoAutoencoder(replace(PRESETS["tiny"], enc_widths=(8, 16, 32, 32))), ae)
    with pytest.raises(ValueError, match="latent channels"):
        transfer_autoencoder(ae, VideoAutoencoder(replace(PRESETS["tiny"], latent_channels=16)))
