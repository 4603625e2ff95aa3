"""Causal video autoencoder: 4x temporal, 8x spatial compression, with a streaming decoder.

Layout (paper §2.1, App. A): a clip of 1 + 4k frames becomes 1 + k latent frames. The first
frame is encoded on its own; every later latent frame encodes 4 new frames, seeing the last
frame before them as context (causal). The decoder turns latent frame k into its 4 RGB
frames from (z_k, z_{k-1}) only, so streaming decode keeps one latent frame as state and
equals whole-clip decode exactly.

A reference decoder (``reference=True``) also takes the last decoded frame, warped to each
coming frame's camera, with the mask of the pixels that were in its view (model/warp.py): as a
video codec predicts from a motion-compensated reference, it copies what was seen through a
learned per-pixel gate and draws from the latent what is new, so what was seen passes around
the latent bottleneck. Its decode runs latent by latent, each frame from the one before; the
streaming decoder keeps that frame as state beside the latent. With ``ref_flow`` it also moves the
warped reference by a flow it reads from the latents (the parallax the camera's homography misses). Pixels are in [-1, 1]; shapes use B batch, F frames,
C channels, H, W pixels, h, w latent pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as Fn
from einops import rearrange

from model.io import Pretrained
from model.warp import IDENTITY, shift_reference, warp_filled, warp_reference

FLOW_PX = 8.0         # a reference flow output of 1 moves the reference by 8 pixels


@dataclass
class AutoencoderConfig:
    """Autoencoder sizes; ``latent_mean/std`` normalise latents for the DiT (set after training)."""
    latent_channels: int = 16
    frames_per_latent: int = 4                       # temporal compression
    enc_widths: tuple[int, ...] = (32, 64, 128, 256)  # widths at H, H/2, H/4, H/8
    enc_blocks: int = 1                               # residual blocks per encoder level
    dec_widths: tuple[int, ...] = (256, 128, 64, 32)  # widths at H/8, H/4, H/2, H
    dec_blocks: tuple[int, ...] = (2, 1, 1, 1)        # residual blocks per decoder level
    latent_mean: tuple[float, ...] = ()               # per latent channel, empty = 0
    latent_std: tuple[float, ...] = ()                # per latent channel, empty = 1
    reference: bool = False                           # the decoder copies from the warped last frame
    pose_warp: bool = False                           # ... which a pose model warps per bone (controls/bone_warp.py)
    ref_flow: bool = False                            # ... and moves further by a flow it reads from the latents
    ref_kernel: int = 3                               # kernel of the reference branch's second convs (1: lighter)

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.enc_widths) - 1)


PRESETS = {
    "tiny": AutoencoderConfig(latent_channels=8, enc_widths=(8, 16, 16, 32), dec_widths=(32, 16, 16, 8),
                              dec_blocks=(1, 1, 1, 1)),
    "tiny-wide": AutoencoderConfig(latent_channels=16, enc_widths=(8, 16, 16, 32), dec_widths=(32, 16, 16, 8),
                                   dec_blocks=(1, 1, 1, 1)),
    "tiny-f2": AutoencoderConfig(latent_channels=8, enc_widths=(8, 16, 16, 32), dec_widths=(32, 16, 16, 8),
                                 dec_blocks=(1, 1, 1, 1), frames_per_latent=2),
    "small": AutoencoderConfig(),
    # the same network with twice the latent channels (24x fewer numbers than pixels instead of 48x):
    # the avatar's fast thin limbs need it (docs/training.md, "A wider avatar autoencoder")
    "small-32": AutoencoderConfig(latent_channels=32),
    # the same network packing 2 frames per latent instead of 4 (as many numbers per second as
    # small-32): for the avatar's fast limbs, which a 4-frame latent smears into a ghost
    "small-f2": AutoencoderConfig(frames_per_latent=2),
}


class ResBlock(nn.Module):
    """conv-SiLU-conv residual block; the second conv starts at zero, so the block starts as identity."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(Fn.silu(self.conv1(Fn.silu(x))))


# Nearest 2x upsampling then a 3x3 conv (padding 1) is a stride-2 transposed 4x4 conv: each output
# pixel's 3x3 window over the upsampled map covers only 2x2 distinct input pixels, so the 3 taps of
# each axis fold into 2 per output phase, 4 in all: [w2, w1 + w2, w0 + w1, w0] in conv_transpose2d's
# tap order. Exact up to float rounding, and 4/9 of the multiply-adds (the decoder's upsampling
# convs are 30 % of its work: a decode step runs 1.1-1.2x faster, README, python -m bench.decoder).
_FOLD = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])   # (4, 3)


def fold_upsample_conv(weight: torch.Tensor) -> torch.Tensor:
    """(O, I, 3, 3) conv weight -> (I, O, 4, 4) weight of the equal stride-2 transposed conv,
    summed in at least fp32 and returned in the weight's dtype and memory format."""
    acc = torch.promote_types(weight.dtype, torch.float32)               # bf16 taps summed in fp32
    M = _FOLD.to(weight.device, acc)
    w = torch.einsum("ka,lb,oiab->iokl", M, M, weight.to(acc)).to(weight.dtype)
    nhwc = not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last)
    return w.contiguous(memory_format=torch.channels_last if nhwc else torch.contiguous_format)


def upsample_conv_reference(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """(B, I, h, w) -> (B, O, 2h, 2w): nearest 2x upsampling, then ``conv`` (3x3, padding 1)."""
    return conv(Fn.interpolate(x, scale_factor=2.0, mode="nearest"))


class UpsampleConv(nn.Sequential):
    """A decoder level: residual blocks, then nearest 2x upsampling and a 3x3 conv, the last two run
    as one transposed conv (``_FOLD``). The children stay [..., Upsample, Conv2d], so weights load
    as before. The folded weight is cached for inference (no grad) until the conv's weight changes.
    ``fused = False`` runs the plain reference instead (bench/decoder.py times both)."""

    def __init__(self, *blocks: nn.Module):
        super().__init__(*blocks)
        if not (isinstance(self[-2], nn.Upsample) and isinstance(self[-1], nn.Conv2d)):
            raise ValueError("UpsampleConv ends with nn.Upsample and a 3x3 nn.Conv2d")
        self.fused = True
        self._folded: tuple[tuple, torch.Tensor] | None = None

    def folded(self) -> torch.Tensor:
        w = self[-1].weight
        if torch.is_grad_enabled() and w.requires_grad:
            return fold_upsample_conv(w)
        key = (w.data_ptr(), w._version, w.dtype, w.device, w.is_contiguous())
        if self._folded is None or self._folded[0] != key:
            self._folded = (key, fold_upsample_conv(w.detach()))
        return self._folded[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in list(self)[:-2]:
            x = block(x)
        if not self.fused:
            return upsample_conv_reference(x, self[-1])
        b = self[-1].bias                                 # (autocast casts conv_transpose2d's inputs as conv2d's)
        return Fn.conv_transpose2d(x, self.folded().to(x.dtype), None if b is None else b.to(x.dtype), stride=2, padding=1)


class Encoder(nn.Module):
    """(B, 1 + fpl, 3, H, W) context frame + new frames -> (B, C, h, w)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        w = cfg.enc_widths
        self.conv_in = nn.Conv2d(3 * (1 + cfg.frames_per_latent), w[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for i, ch in enumerate(w):
            blocks = [ResBlock(ch) for _ in range(cfg.enc_blocks)]
            if i + 1 < len(w):
                blocks.append(nn.Conv2d(ch, w[i + 1], 3, stride=2, padding=1))
            self.levels.append(nn.Sequential(*blocks))
        self.conv_out = nn.Conv2d(w[-1], cfg.latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(rearrange(x, "b f c h w -> b (f c) h w"))
        for level in self.levels:
            h = level(h)
        return self.conv_out(Fn.silu(h))


class Decoder(nn.Module):
    """(B, 2C, h, w) [z_k, z_{k-1}] (+ reference (B, fpl, 4, H, W)) -> (B, fpl, 3, H, W)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        w = cfg.dec_widths
        self.fpl = cfg.frames_per_latent
        self.conv_in = nn.Conv2d(2 * cfg.latent_channels, w[0], 3, padding=1)
        self.levels = nn.ModuleList()
        for i, ch in enumerate(w):
            blocks: list[nn.Module] = [ResBlock(ch) for _ in range(cfg.dec_blocks[i])]
            if i + 1 < len(w):
                blocks += [nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(ch, w[i + 1], 3, padding=1)]
                self.levels.append(UpsampleConv(*blocks))
            else:
                self.levels.append(nn.Sequential(*blocks))
        self.conv_out = nn.Conv2d(w[-1], 3 * cfg.frames_per_latent, 3, padding=1)
        self.reference = cfg.reference
        if cfg.reference:
            n = 4 * self.fpl                                     # per coming frame: warped RGB + in-view mask
            # the reference's features join the last two levels (H/2 and H); their last convs start at
            # zero and the gate half open everywhere in view (a gate started nearly closed sits in the
            # sigmoid's flat tail, where Adam's small steps take tens of thousands of steps to open it)
            k = cfg.ref_kernel
            if k not in (1, 3):
                raise ValueError(f"ref_kernel must be 1 or 3, got {k}")
            self.ref_half = nn.Sequential(nn.Conv2d(n, w[-2], 3, stride=2, padding=1), nn.SiLU(),
                                          nn.Conv2d(w[-2], w[-2], k, padding=k // 2))
            self.ref_full = nn.Sequential(nn.Conv2d(n, w[-1], 3, padding=1), nn.SiLU(),
                                          nn.Conv2d(w[-1], w[-1], k, padding=k // 2))
            self.gate = nn.Conv2d(w[-1], self.fpl, 3, padding=1)
            for conv in (self.ref_half[-1], self.ref_full[-1], self.gate):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        self.ref_flow = cfg.reference and cfg.ref_flow
        if self.ref_flow:
            # the motion the camera's warp misses (parallax: near things move more than far ones),
            # per coming frame, read from the latents at H/2 and applied to the warped reference;
            # started at zero, so the decoder starts as it was
            self.flow = nn.Conv2d(w[-2], 2 * self.fpl, 3, padding=1)
            nn.init.zeros_(self.flow.weight)
            nn.init.zeros_(self.flow.bias)

    def forward(self, z: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv_in(z)
        if self.reference and ref is None:                       # no reference: an empty one (mask 0)
            H, W = h.shape[-2] * 2 ** (len(self.levels) - 1), h.shape[-1] * 2 ** (len(self.levels) - 1)
            ref = h.new_zeros(h.shape[0], self.fpl, 4, H, W)
        r = None                                                 # the reference as features, (B, fpl 4, H, W)
        last = len(self.levels) - 1
        for i, level in enumerate(self.levels):
            if self.reference and i == last - 1:
                if self.ref_flow:
                    flow = FLOW_PX * self.flow(Fn.silu(h)).float()          # (B, 2 fpl, H/2, W/2) in pixels
                    ref = shift_reference(ref, rearrange(flow, "b (f two) h w -> b f two h w", two=2))
                r = rearrange(ref.to(h.dtype), "b f c h w -> b (f c) h w").contiguous(memory_format=torch.channels_last)
                h = h + self.ref_half(r)
            if self.reference and i == last:
                h = h + self.ref_full(r)
            h = level(h)
        feat = Fn.silu(h)
        if not self.reference:
            return rearrange(self.conv_out(feat), "b (f c) h w -> b f c h w", f=self.fpl)
        # the frames and the gate read the same features: one conv for both, (B, fpl 3 + fpl, H, W)
        w = torch.cat([self.conv_out.weight, self.gate.weight]).to(feat.dtype)
        b = torch.cat([self.conv_out.bias, self.gate.bias]).to(feat.dtype)
        y = Fn.conv2d(feat, w, b, padding=1)
        n = 3 * self.fpl
        x = rearrange(y[:, :n], "b (f c) h w -> b f c h w", f=self.fpl)
        # copy from the reference where the gate opens and the pixel was in view
        a = torch.sigmoid(y[:, n:]).unsqueeze(2) * ref[:, :, 3:].to(x.dtype)          # (B, fpl, 1, H, W)
        return torch.lerp(x, ref[:, :, :3].to(x.dtype), a)


class VideoAutoencoder(Pretrained):
    """Causal video autoencoder (see the module docstring for the latent layout)."""
    config_class = AutoencoderConfig

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if len(config.dec_blocks) != len(config.dec_widths):
            raise ValueError("dec_blocks and dec_widths must have the same length")
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        C = config.latent_channels
        mean = torch.tensor(config.latent_mean or [0.0] * C).view(1, C, 1, 1)
        std = torch.tensor(config.latent_std or [1.0] * C).view(1, C, 1, 1)
        if mean.numel() != C or std.numel() != C:
            raise ValueError("latent_mean/latent_std must have latent_channels entries")
        self.register_buffer("latent_mean", mean, persistent=False)
        self.register_buffer("latent_std", std, persistent=False)

    # ------------------------------------------------------------------ encoding
    def encode_chunks(self, ctx_and_frames: torch.Tensor) -> torch.Tensor:
        """(B, 1 + fpl, 3, H, W) -> (B, C, h, w) raw latent of the fpl new frames."""
        return self.encoder(ctx_and_frames)

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) first frame -> (B, C, h, w): a still chunk, so it is its own context."""
        return self.encoder(x.unsqueeze(1).expand(-1, 1 + self.config.frames_per_latent, -1, -1, -1))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 1 + fpl*k, 3, H, W) -> (B, 1 + k, C, h, w) raw latents."""
        fpl = self.config.frames_per_latent
        F = video.shape[1]
        if (F - 1) % fpl:
            raise ValueError(f"a clip must have 1 + {fpl}k frames, got {F}")
        z0 = self.encode_image(video[:, 0])
        if F == 1:
            return z0.unsqueeze(1)
        k = (F - 1) // fpl
        idx = torch.arange(k, device=video.device)[:, None] * fpl + torch.arange(fpl + 1, device=video.device)
        chunks = video[:, idx]                                   # (B, k, 1 + fpl, 3, H, W)
        zs = self.encoder(rearrange(chunks, "b k f c h w -> (b k) f c h w"))
        zs = rearrange(zs, "(b k) c h w -> b k c h w", b=video.shape[0])
        return torch.cat([z0.unsqueeze(1), zs], 1)

    # ------------------------------------------------------------------ decoding
    def decode_step(self, z: torch.Tensor, z_prev: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, h, w) latent and its predecessor (and, for a reference decoder, the reference
        (B, fpl, 4, H, W) of model/warp.py) -> (B, fpl, 3, H, W) frames."""
        return self.decoder(torch.cat([z, z_prev], 1), ref)

    def decode(self, z: torch.Tensor, maps: torch.Tensor | None = None, first: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1 + k, C, h, w) raw latents -> (B, 1 + fpl*k, 3, H, W) frames.

        A reference decoder decodes latent by latent, each from the last frame before it warped by
        ``maps`` (B, k, fpl, 3, 3) (each coming frame to that frame; None: the identity), starting
        from ``first`` (B, 3, H, W), the stream's first frame, or else latent 0 decoded."""
        B, L = z.shape[:2]
        prev = torch.cat([z[:, :1], z[:, :-1]], 1)               # latent 0 is its own predecessor
        if not self.config.reference:
            x = self.decoder(rearrange(torch.cat([z, prev], 2), "b l c h w -> (b l) c h w"))
            x = rearrange(x, "(b l) f c h w -> b l f c h w", b=B)
            return torch.cat([x[:, 0, -1:], rearrange(x[:, 1:], "b l f c h w -> b (l f) c h w")], 1)
        stream = StreamingDecoder(self)
        out = [stream(z[:, 0])]
        if first is not None:
            stream.last = first.to(out[0].dtype)
        for j in range(1, L):
            out.append(stream(z[:, j], None if maps is None else maps[:, j - 1]))
        return torch.cat(out, 1)

    # ------------------------------------------------------------------ normalisation
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latents (..., C, h, w) -> unit-scale latents for the DiT."""
        return (z - self.latent_mean.to(z.dtype)) / self.latent_std.to(z.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.latent_std.to(z.dtype) + self.latent_mean.to(z.dtype)


@torch.no_grad()
def transfer_autoencoder(dst: VideoAutoencoder, src: VideoAutoencoder) -> list[str]:
    """Start ``dst`` from a trained ``src`` with the same layers and at least as many latent
    channels: every tensor of the same shape is copied; the encoder's output conv keeps ``src``'s
    filters for the first channels (the new ones keep their initialisation), and the decoder's
    input conv gets ``src``'s columns for [z_k | z_{k-1}]'s old channels and zeros for the new
    ones, so ``dst`` starts decoding exactly like ``src``. Returns the names of the tensors left
    at ``dst``'s initialisation.

    ``dst`` may also pack fewer frames per latent, ``r = src fpl / dst fpl`` times fewer: each of
    its new frames takes the sum of the encoder's input filters of the ``r`` frames it stands for,
    and each of its output frames the mean of the decoder's ``r`` output frames, so ``dst`` starts
    as ``src`` run on the video with every new frame repeated ``r`` times (slow motion)."""
    cs, cd = src.config.latent_channels, dst.config.latent_channels
    fs, fd = src.config.frames_per_latent, dst.config.frames_per_latent
    same = ("enc_widths", "enc_blocks", "dec_widths", "dec_blocks")
    if any(getattr(src.config, f) != getattr(dst.config, f) for f in same) or cd < cs:
        raise ValueError("transfer_autoencoder needs the same layers and at least the same latent channels")
    if fd > fs or fs % fd:
        raise ValueError(f"transfer_autoencoder packs {fs} frames per latent into {fd}: it must divide it")
    r = fs // fd
    own, theirs = dst.state_dict(), src.state_dict()
    left = []
    for k, v in own.items():
        if k in theirs and theirs[k].shape == v.shape:
            v.copy_(theirs[k])
        elif k not in ("encoder.conv_out.weight", "encoder.conv_out.bias", "decoder.conv_in.weight",
                       "encoder.conv_in.weight", "decoder.conv_out.weight", "decoder.conv_out.bias"):
            left.append(k)
    if r > 1:
        w_in = src.encoder.conv_in.weight                            # (w0, 3 (1 + fs), 3, 3): context, frames
        new = w_in[:, 3:].unflatten(1, (fd, r, 3)).sum(2).flatten(1, 2)
        dst.encoder.conv_in.weight.copy_(torch.cat([w_in[:, :3], new], 1))
        dst.decoder.conv_out.weight.copy_(src.decoder.conv_out.weight.unflatten(0, (fd, r, 3)).mean(1).flatten(0, 1))
        dst.decoder.conv_out.bias.copy_(src.decoder.conv_out.bias.unflatten(0, (fd, r, 3)).mean(1).flatten(0, 1))
    dst.encoder.conv_out.weight[:cs] = src.encoder.conv_out.weight
    dst.encoder.conv_out.bias[:cs] = src.encoder.conv_out.bias
    w = dst.decoder.conv_in.weight                                  # (out, 2C, 3, 3): [z_k | z_{k-1}]
    w.zero_()
    w[:, :cs] = src.decoder.conv_in.weight[:, :cs]
    w[:, cd:cd + cs] = src.decoder.conv_in.weight[:, cs:]
    return left


REFERENCE_TENSORS = ("decoder.ref_", "decoder.gate", "decoder.flow")   # what a reference decoder adds


def with_reference(ae: VideoAutoencoder, pose_warp: bool = False, ref_flow: bool = False) -> VideoAutoencoder:
    """``ae`` with a reference decoder: every trained tensor copied, the reference branch at its
    initialisation (it decodes as ``ae`` does where nothing was in view, and half copies elsewhere).
    ``pose_warp``: its pose model's references are warped per bone (a reference decoder keeps its
    weights and only changes what it is given). ``ref_flow``: add the reference flow, started at
    zero (a reference decoder gains it and decodes exactly as before)."""
    if ae.config.reference and (ae.config.ref_flow or not ref_flow):
        if pose_warp and not ae.config.pose_warp:
            ae.config = replace(ae.config, pose_warp=True)
        return ae
    cfg = replace(ae.config, reference=True, pose_warp=pose_warp or ae.config.pose_warp, ref_flow=ref_flow)
    out = VideoAutoencoder(cfg).to(next(ae.parameters()).device)
    missing, unexpected = out.load_state_dict(ae.state_dict(), strict=False)
    if unexpected or any(not k.startswith(REFERENCE_TENSORS) for k in missing):
        raise ValueError(f"with_reference: unexpected tensors {unexpected}, missing {missing}")
    return out


@torch.no_grad()
def with_ref_kernel(ae: VideoAutoencoder, kernel: int) -> VideoAutoencoder:
    """``ae``'s reference decoder with the branch's second convs of ``kernel`` (1 or 3), every other
    tensor copied. 3 -> 1 (the light branch: a 128 px decode step 4.84 -> 4.30 GFLOP): each
    1x1 filter is the sum of its 3x3 taps, which is what the 3x3 conv does on smooth features, so a
    short fine-tune starts near the decoder it came from. 1 -> 3 is exact (the taps around the centre zero)."""
    if not ae.config.reference:
        raise ValueError("with_ref_kernel changes a reference decoder's branch: the decoder has none")
    if ae.config.ref_kernel == kernel:
        return ae
    out = VideoAutoencoder(replace(ae.config, ref_kernel=kernel)).to(next(ae.parameters()).device)
    own = out.state_dict()
    for k, v in ae.state_dict().items():
        if own[k].shape == v.shape:
            own[k].copy_(v)
        elif kernel == 1:                                         # (O, I, 3, 3) -> (O, I, 1, 1)
            own[k].copy_(v.sum((-2, -1), keepdim=True))
        else:                                                     # (O, I, 1, 1) -> (O, I, 3, 3), centre tap
            own[k].zero_()
            own[k][..., 1:2, 1:2] = v
    return out


class StreamingDecoder:
    """Decodes latent frames one at a time. State: the previous latent and, for a reference
    decoder, the last frame, which ``reset(first)`` sets to the stream's first frame."""

    def __init__(self, ae: VideoAutoencoder):
        self.ae = ae
        self.prev: torch.Tensor | None = None
        self.last: torch.Tensor | None = None    # (B, 3, H, W) in [-1, 1]

    def reset(self, first: torch.Tensor | None = None) -> None:
        self.prev, self.last = None, first

    def __call__(self, z: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, h, w) raw latent -> (B, n, 3, H, W): n = 1 for the first latent, else fpl.
        ``maps`` (B, fpl, 3, 3): each coming frame to the last one (None: the identity); only a
        reference decoder reads them."""
        first = self.prev is None
        ref = None
        if self.ae.config.reference and not first and self.last is not None:
            if maps is None:
                maps = IDENTITY.to(z.device).expand(z.shape[0], self.ae.config.frames_per_latent, 3, 3)
            ref = warp_reference(self.last, maps)
        x = self.ae.decode_step(z, z if first else self.prev, ref)
        self.prev = z
        if not (first and self.last is not None):
            self.last = x[:, -1]
        return x[:, -1:] if first else x


class PixelLoop:
    """The generator's recycled input taken from the pixels the viewer sees: each new latent is
    decoded by the streaming (reference) decoder, and the frames shown are encoded again, with
    the frame before them as context, into the latent the generator recycles next. So what a
    reference decoder copied from the past also reaches the generator. Latents are normalised."""

    def __init__(self, ae: VideoAutoencoder, first: torch.Tensor, stream: StreamingDecoder | None = None):
        """``first`` (B, 3, H, W) in [-1, 1]: the stream's first frame (the encoder's first context);
        ``stream``: the streaming decoder to drive (reset here; default: a new one)."""
        self.ae = ae
        self.stream = stream or StreamingDecoder(ae)
        self.stream.reset(first if ae.config.reference else None)
        self.ctx = first

    def start(self, z0: torch.Tensor) -> None:
        """Primes the decoder with the first frame's latent (its frame is the first frame itself)."""
        self.stream(self.ae.denormalize(z0.float()).to(z0.dtype))

    def __call__(self, z: torch.Tensor, maps: torch.Tensor | None = None,
                 encode: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, C, h, w) generated latent -> its frames (B, fpl, 3, H, W) and the re-encoded latent
        (None with ``encode=False``: the caller recycles something else, e.g. ``warped``)."""
        frames = self.stream(self.ae.denormalize(z.float()).to(z.dtype), maps)
        z_in = self._encoded(frames, z.dtype) if encode else None
        self.ctx = frames[:, -1]
        return frames, z_in

    def _encoded(self, frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(B, fpl, 3, H, W) coming frames, after the last frame shown as context -> (B, C, h, w) normalised."""
        enc_dtype = next(self.ae.encoder.parameters()).dtype
        chunk = torch.cat([self.ctx[:, None].to(frames.dtype), frames], 1).clamp(-1, 1).to(enc_dtype)
        return self.ae.normalize(self.ae.encode_chunks(chunk).float()).to(dtype)

    def warped(self, points: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The last frame shown moved to each coming frame's pose (per-bone point fields (B, fpl, H, W,
        2), controls/bone_warp.py), where the body uncovered the room the last frame as it was, encoded
        with the last frame as context: (B, C, h, w), the coming latent as geometry predicts it."""
        return self._encoded(warp_filled(self.ctx, points), dtype)        # warped: (B, fpl, 3, H, W) fp32
