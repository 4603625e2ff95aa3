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


def _upsample_conv(ci=6, co=5, seed=0):
    import torch.nn as nn

    from model.autoencoder import UpsampleConv
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(ci, co, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        conv.bias.copy_(torch.randn(co, generator=g))
    return UpsampleConv(nn.Upsample(scale_factor=2.0, mode="nearest"), conv)


@pytest.mark.parametrize("nhwc", [False, True])
def test_upsample_conv_equals_upsampling_then_the_conv(nhwc):
    """The decoder's upsampling convs run as one transposed conv with folded taps: the same numbers as
    nearest 2x upsampling then the 3x3 conv, on random inputs, odd and non-square sizes, at the edges."""
    from model.autoencoder import upsample_conv_reference
    m = _upsample_conv()
    x = torch.randn(3, 6, 5, 7)
    if nhwc:
        m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        fast, ref = m(x), upsample_conv_reference(x, m[-1])
    assert fast.shape == (3, 5, 10, 14)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)


def test_upsample_conv_gradients_are_the_reference_ones():
    """Training backpropagates through the fold: input and weight gradients match the reference's."""
    from model.autoencoder import upsample_conv_reference
    m = _upsample_conv()
    x = torch.randn(2, 6, 4, 4, requires_grad=True)
    out = torch.randn(2, 5, 8, 8)
    grads = []
    for f in (m, lambda v: upsample_conv_reference(v, m[-1])):
        m.zero_grad()
        x.grad = None
        (f(x) * out).sum().backward()
        grads.append((x.grad.clone(), m[-1].weight.grad.clone(), m[-1].bias.grad.clone()))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


def test_upsample_conv_cache_follows_the_weights():
    """Inference caches the folded weight; changing the conv's weights (an optimiser or EMA step, a
    dtype or layout change) makes a new one."""
    from model.autoencoder import upsample_conv_reference
    m = _upsample_conv()
    x = torch.randn(1, 6, 4, 4)
    with torch.no_grad():
        m(x)
        m[-1].weight.mul_(-0.5)                                  # in place: the same storage
        torch.testing.assert_close(m(x), upsample_conv_reference(x, m[-1]), rtol=1e-5, atol=1e-5)
        m.to(torch.float64)
        assert m(x.double()).dtype == torch.float64
        torch.testing.assert_close(m(x.double()), upsample_conv_reference(x.double(), m[-1]))


def test_decoder_levels_load_the_same_weights():
    """The fused levels keep their children [..., Upsample, Conv2d], so shipped weights load by name."""
    from model.autoencoder import UpsampleConv
    ae = VideoAutoencoder(PRESETS["tiny"])
    ups = [lv for lv in ae.decoder.levels if isinstance(lv, UpsampleConv)]
    assert len(ups) == len(ae.config.dec_widths) - 1
    keys = ae.state_dict()
    assert "decoder.levels.0.0.conv1.weight" in keys and "decoder.levels.0.2.weight" in keys   # ResBlock, -, Conv2d
