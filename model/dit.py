"""Video DiT over latent frames: block-causal attention, 3D RoPE, recycled input, KV cache.

One network, three ways to run it (paper §2.1):
- ``forward(..., mode="bidirectional")``: the offline diffusion teacher, all frames at once;
- ``forward(..., mode="causal")``: block-causal over a whole clip in parallel (training);
- ``step(...)`` with a ``KVCache``: streaming, one latent frame per call (inference).

Sequence layout: latent frame 0 is the first frame (the uploaded or default image), clean,
and stays visible to every later frame (the paper's always-attended first frame); frame m >= 1
attends to frame 0, to the previous ``window`` frames and to itself. Each frame's tokens see,
concatenated on channels, [recycled previous latent | noisy latent | control features].

Camera mode may also reproject (``reproject=True``): the recycled latent is warped to the
commanded camera by the homography of the relative rotation and zoom (``warp`` maps, from
controls/camera.py) and given as a third input, which is also the base of the residual. The
network then only corrects what a rotation cannot explain (parallax, new content at the edges,
the motion inside the 4 frames), the way reprojection-conditioned camera control does it
(GEN3C, Ren et al. 2025); on world clips the warped previous latent has half the error of the
unwarped one (latent MSE 0.43 vs 0.84).

RoPE: time uses the latent frame index (a fixed interval, any length works); the first frame's
keys carry no time rotation (their time dims are zeroed), so how long ago the stream started
never changes a score. The network predicts the clean latent as the recycled latent plus a
residual (x0-prediction; see train/losses.py for the v-space loss).

Shapes: B batch, F latent frames, T tokens per frame, D model width, H heads, E head dim,
C latent channels, h, w latent pixels, p patch size, Cc control features per token.

One file on purpose (a little over 450 lines): the config, the blocks, the cache and the three ways to
run them share one sequence layout, and the streaming-equals-parallel tests read best against one page.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as Fn
from einops import rearrange

from model.io import Pretrained
from model.kernels import apply_rope, attention, modulated_norm
from model.warp import reproject_latents

# control features per token for each video frame a latent packs: 6 Plücker numbers (camera),
# 33 landmark weights (pose); a token carries those of all its latent's frames
CONTROL_FEATURES = {"camera": 6, "pose": 33, "none": 0}


@dataclass(frozen=True)
class FrameLayout:
    """Which frame each query and key token belongs to, and the attention pattern over frames
    (the mask of model/kernels/attention.py)."""
    q_frames: torch.Tensor        # (Nq,) stream index of each query token's frame
    k_frames: torch.Tensor        # (Nk,) the same for the keys (cached ones first)
    window: int                   # previous frames a frame attends to (plus frame 0)
    causal: bool                  # False: every frame sees every frame


@dataclass
class DiTConfig:
    """Network sizes and attention layout; presets below."""
    latent_channels: int = 16
    latent_size: int = 16         # h = w of a latent frame
    patch: int = 2                # p: tokens are p x p latent pixels
    dim: int = 256                # D
    depth: int = 8
    heads: int = 4                # H; head dim E = dim / heads
    mlp_ratio: float = 4.0
    control: str = "camera"       # camera | pose | none
    window: int = 6               # N: previous latent frames a frame attends to (plus frame 0)
    rope_time_dims: int = 16      # head dims rotated by the frame index (rest split over h and w)
    rope_base: float = 100.0
    reproject: bool = False       # camera mode: warp the recycled latent by the commanded rotation
    frames_per_latent: int = 4    # video frames per latent frame: the autoencoder's, sets Cc

    @property
    def tokens_per_frame(self) -> int:
        return (self.latent_size // self.patch) ** 2

    @property
    def control_features(self) -> int:
        return CONTROL_FEATURES[self.control] * self.frames_per_latent


PRESETS = {
    "tiny": DiTConfig(latent_channels=8, latent_size=4, patch=2, dim=32, depth=2, heads=2, window=2,
                      rope_time_dims=4),
    "small": DiTConfig(dim=256, heads=4),           # 9.8M: 1.5 s per batch of 8 x 9 latent frames on 2 cores
    "base": DiTConfig(dim=384, heads=6),            # 21M
    "large": DiTConfig(dim=512, depth=12, heads=8),
    "small-256": DiTConfig(dim=256, heads=4, latent_size=32, window=4),
}


# ----------------------------------------------------------------------------- helpers
def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dim, statistics in fp32, output in x's dtype (QK-norm)."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()).to(x.dtype)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(...,) t in [0, 1] -> (..., dim) sinusoidal features of 1000 t (DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[..., None] * freqs
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


def rope_angles(positions: torch.Tensor, dims: int, base: float) -> torch.Tensor:
    """(N,) integer positions -> (N, dims // 2) angles, computed in float64 so that positions
    in the millions (hours of streaming) keep exact relative angles."""
    inv = base ** (-torch.arange(0, dims, 2, dtype=torch.float64) / dims)
    return positions.to(torch.float64)[:, None] * inv[None, :]


class RoPE3D(nn.Module):
    """cos/sin tables for (frame, row, column) positions; head dims split [time | h | w]."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        E = cfg.dim // cfg.heads
        self.dt = cfg.rope_time_dims
        self.ds = (E - self.dt) // 2 // 2 * 2    # even dims for each spatial axis
        if self.dt % 2 or self.dt + 2 * self.ds > E:
            raise ValueError("rope_time_dims must be even and leave room for the spatial dims")
        self.base = cfg.rope_base
        g = cfg.latent_size // cfg.patch
        ii, jj = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
        ang = torch.cat([rope_angles(ii.flatten(), self.ds, self.base), rope_angles(jj.flatten(), self.ds, self.base)], -1)
        self.register_buffer("space_angles", ang, persistent=False)    # (T, ds)
        self.E = E

    def tables(self, frame_pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """cos, sin (F * T, E // 2) for frames at stream positions ``frame_pos`` (F,), and a key
        scale (F * T, E) that zeroes the time dims of the first frame's keys (position 0), so its
        scores never depend on how far the query is from the start of the stream."""
        F, T = frame_pos.shape[0], self.space_angles.shape[0]
        ta = rope_angles(frame_pos, self.dt, self.base)                  # (F, dt/2)
        ang = torch.zeros(F, T, self.E // 2, dtype=torch.float64, device=frame_pos.device)
        ang[..., : self.dt // 2] = ta[:, None]
        ang[..., self.dt // 2: self.dt // 2 + self.ds] = self.space_angles.to(ang.device)[None]
        ang = ang.flatten(0, 1)
        key_scale = torch.ones(F, T, self.E, device=frame_pos.device)
        first = frame_pos == 0
        half = self.E // 2
        key_scale[first, :, : self.dt // 2] = 0.0
        key_scale[first, :, half: half + self.dt // 2] = 0.0
        return ang.cos().float(), ang.sin().float(), key_scale.flatten(0, 1)


def maps_from_first(maps: torch.Tensor) -> torch.Tensor:
    """(B, F, 3, 3) frame-to-previous-frame maps -> frame-to-first-frame maps (their running
    product M_1 M_2 ... M_f): how the teacher reprojects the first frame to every frame."""
    out = [maps[:, 0]]
    for f in range(1, maps.shape[1]):
        out.append(out[-1] @ maps[:, f])
    return torch.stack(out, 1)


# ----------------------------------------------------------------------------- cache
class KVCache:
    """Keys and values of the first frame and a ring of the last ``window`` frames, per layer.

    Preallocated from the config, so memory is constant however long the stream runs. Layout
    per layer: (B, H, (1 + window) * T, E), the first frame in slots [0, T), then the ring.
    ``positions`` holds each slot's stream frame index (-1 = empty). Cached tensors are always
    detached: gradients of a segment never reach back into earlier segments (App. B, long video).
    """

    def __init__(self, cfg: DiTConfig, batch: int, device=None, dtype=torch.float32):
        self.T, self.window = cfg.tokens_per_frame, cfg.window
        E = cfg.dim // cfg.heads
        self.slots = 1 + cfg.window
        shape = (cfg.depth, batch, cfg.heads, self.slots * self.T, E)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.positions = torch.full((self.slots,), -1, dtype=torch.long, device=device)

    def reset(self) -> None:
        self.k.zero_()
        self.v.zero_()
        self.positions.fill_(-1)

    def clone(self) -> "KVCache":
        c = object.__new__(KVCache)
        c.T, c.window, c.slots = self.T, self.window, self.slots
        c.k, c.v, c.positions = self.k.clone(), self.v.clone(), self.positions.clone()
        return c

    def slot(self, position: int) -> int:
        return 0 if position == 0 else 1 + (position - 1) % self.window

    def write(self, layer: int, positions: list[int], k: torch.Tensor, v: torch.Tensor) -> None:
        """Store the keys/values (B, H, F*T, E) of frames at ``positions`` (only the ones that
        stay visible: the first frame and the last ``window`` others)."""
        T = self.T
        keep = [i for i, p in enumerate(positions) if p == 0]
        keep += [i for i, p in enumerate(positions) if p > 0][-self.window:]
        for i in keep:
            s = self.slot(positions[i])
            self.k[layer, :, :, s * T:(s + 1) * T] = k[:, :, i * T:(i + 1) * T].detach()
            self.v[layer, :, :, s * T:(s + 1) * T] = v[:, :, i * T:(i + 1) * T].detach()
            if layer == self.k.shape[0] - 1:
                self.positions[s] = positions[i]


# ----------------------------------------------------------------------------- blocks
class Attention(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.H, self.E = cfg.heads, cfg.dim // cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)
        self.q_norm = nn.RMSNorm(self.E, eps=1e-6)
        self.k_norm = nn.RMSNorm(self.E, eps=1e-6)
        self.proj = nn.Linear(cfg.dim, cfg.dim)

    def qkv_heads(self, x: torch.Tensor, rope: tuple):
        """(B, N, D) -> q, k, v (B, H, N, E) with QK-norm and RoPE applied."""
        cos, sin, key_scale = rope
        q, k, v = rearrange(self.qkv(x), "b n (three h e) -> three b h n e", three=3, h=self.H)
        q = apply_rope(rms_norm(q, self.q_norm.weight), cos, sin)
        k = apply_rope(rms_norm(k, self.k_norm.weight), cos, sin) * key_scale.to(q.dtype)
        return q, k, v



class Block(nn.Module):
    """Transformer block with adaLN-Zero modulation from the per-frame conditioning vector."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.attn = Attention(cfg)
        hidden = int(cfg.dim * cfg.mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(cfg.dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, cfg.dim))
        self.ada = nn.Linear(cfg.dim, 6 * cfg.dim)

    def forward(self, x, c, T, rope, frames: FrameLayout, cache: KVCache | None = None, layer: int = 0,
                positions: list[int] | None = None, update_cache: bool = True):
        """x (B, F*T, D), c (B, F, D); ``frames`` lays out the attention mask (see
        model/kernels/attention.py).

        With ``cache``, the frames also attend to the cached keys (a prefix) and their own keys
        and values are written into it afterwards (unless ``update_cache`` is False).
        """
        mod = self.ada(Fn.silu(c)).repeat_interleave(T, dim=1)        # (B, F*T, 6D)
        sh1, sc1, g1, sh2, sc2, g2 = mod.chunk(6, dim=-1)
        h = modulated_norm(x, sh1, sc1)
        q, k, v = self.attn.qkv_heads(h, rope)                          # (B, H, F*T, E)
        if cache is not None:
            kk = torch.cat([cache.k[layer].to(k.dtype), k], 2)
            vv = torch.cat([cache.v[layer].to(v.dtype), v], 2)
            if update_cache:
                cache.write(layer, positions, k, v)
        else:
            kk, vv = k, v
        o = attention(q, kk, vv, frames.q_frames, frames.k_frames, frames.window, frames.causal)
        x = x + g1 * self.attn.proj(rearrange(o, "b h n e -> b n (h e)"))
        x = x + g2 * self.mlp(modulated_norm(x, sh2, sc2))
        return x


# ----------------------------------------------------------------------------- model
class VideoDiT(Pretrained):
    """Latent video DiT (see the module docstring)."""
    config_class = DiTConfig

    def __init__(self, config: DiTConfig):
        super().__init__()
        if config.control not in CONTROL_FEATURES:
            raise ValueError(f"control must be one of {sorted(CONTROL_FEATURES)}, got {config.control!r}")
        if config.dim % config.heads or config.latent_size % config.patch:
            raise ValueError("dim must divide by heads and latent_size by patch")
        if config.frames_per_latent < 1:
            raise ValueError(f"frames_per_latent must be at least 1, got {config.frames_per_latent}")
        self.config = cfg = config
        if config.reproject and config.control != "camera":
            raise ValueError("reproject needs camera control")
        P = cfg.patch * cfg.patch * cfg.latent_channels
        self.x_in = nn.Linear((3 if cfg.reproject else 2) * P + cfg.control_features, cfg.dim)
        self.t_mlp = nn.Sequential(nn.Linear(256, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.first_embed = nn.Parameter(torch.zeros(cfg.dim))           # marks the first frame
        self.rope = RoPE3D(cfg)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.depth)])
        self.final_ada = nn.Linear(cfg.dim, 2 * cfg.dim)
        self.out = nn.Linear(cfg.dim, P)
        self.gradient_checkpointing = False
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linears, zeroed adaLN and output (adaLN-Zero: every block starts as identity)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.t_mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_mlp[2].weight, std=0.02)
        for b in self.blocks:
            nn.init.zeros_(b.ada.weight)
            nn.init.zeros_(b.ada.bias)
        for m in (self.final_ada, self.out):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    # -------------------------------------------------------------- token I/O
    def patchify(self, z: torch.Tensor) -> torch.Tensor:
        """(B, F, C, h, w) -> (B, F, T, p*p*C)."""
        p = self.config.patch
        return rearrange(z, "b f c (gh p1) (gw p2) -> b f (gh gw) (p1 p2 c)", p1=p, p2=p)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, F, T, p*p*C) -> (B, F, C, h, w)."""
        p, g = self.config.patch, self.config.latent_size // self.config.patch
        return rearrange(x, "b f (gh gw) (p1 p2 c) -> b f c (gh p1) (gw p2)", gh=g, p1=p, p2=p)

    def _embed(self, recycled, noisy, control, t, positions, warp):
        """Token and conditioning embeddings. recycled, noisy (B, F, C, h, w); control (B, F, T, Cc);
        t (B, F); positions (F,); warp (B, F, 3, 3) or None. Returns x (B, F*T, D), c (B, F, D) and
        the residual base tokens (B, F, T, P): the reprojected recycled latent, or the recycled one."""
        rec_tok = self.patchify(recycled)
        parts = [rec_tok]
        if self.config.reproject:
            if warp is None:
                raise ValueError("this model reprojects the recycled latent: pass the camera's warp maps")
            rec_tok = self.patchify(reproject_latents(recycled, warp))
            parts.append(rec_tok)
        parts.append(self.patchify(noisy))
        if self.config.control_features:
            parts.append(control.to(noisy.dtype))
        x = self.x_in(torch.cat(parts, -1)).flatten(1, 2)                 # (B, F*T, D)
        c = self.t_mlp(timestep_embedding(t, 256).to(x.dtype))           # (B, F, D)
        c = c + (positions == 0)[None, :, None].to(c.dtype) * self.first_embed
        return x, c, rec_tok

    def _head(self, x, c, rec_tok, T):
        sh, sc = self.final_ada(Fn.silu(c)).repeat_interleave(T, dim=1).chunk(2, dim=-1)
        out = self.out(modulated_norm(x, sh, sc))                         # (B, F*T, P)
        out = rearrange(out, "b (f t) p -> b f t p", t=T)
        return self.unpatchify(rec_tok.to(out.dtype) + out)              # x0 = recycled + residual

    # -------------------------------------------------------------- forward
    def forward(self, recycled: torch.Tensor, noisy: torch.Tensor, control: torch.Tensor | None,
                t: torch.Tensor, mode: str = "causal", positions: torch.Tensor | None = None,
                cache: KVCache | None = None, return_features: bool = False,
                warp: torch.Tensor | None = None, update_cache: bool = True) -> torch.Tensor:
        """Predict clean latents for F frames at once.

        recycled, noisy: (B, F, C, h, w); control: (B, F, T, Cc) or None; t: (B, F) in [0, 1];
        warp: (B, F, 3, 3) maps from each frame's camera to its recycled latent's (reproject only).
        ``positions`` (F,) are the frames' stream indices (default 0..F-1; 0 = the first frame).
        With ``cache`` (causal only) the frames also attend to the cached earlier frames, and
        their keys and values are added to the cache (unless ``update_cache`` is False: multi-pass
        samplers read the cache on every pass and write it on the last). Returns x0 (B, F, C, h, w), or the final
        tokens (B, F*T, D) if ``return_features``.
        """
        F = noisy.shape[1]
        T = self.config.tokens_per_frame
        dev = noisy.device
        if positions is None:
            positions = torch.arange(F, device=dev)
        x, c, rec_tok = self._embed(recycled, noisy, control, t, positions, warp)
        rope = self.rope.tables(positions)
        if mode not in ("causal", "bidirectional"):
            raise ValueError(f"mode must be 'causal' or 'bidirectional', got {mode!r}")
        q_frames = positions.repeat_interleave(T)                          # (F*T,) frame of each token
        k_frames = q_frames
        if cache is not None:
            if mode != "causal":
                raise ValueError("a KV cache only makes sense for causal attention")
            k_frames = torch.cat([cache.positions.to(dev).repeat_interleave(T), q_frames])
        frames = FrameLayout(q_frames, k_frames, self.config.window, mode == "causal")
        pos_list = positions.tolist()
        for i, blk in enumerate(self.blocks):
            if self.gradient_checkpointing and self.training and cache is None:
                x = torch.utils.checkpoint.checkpoint(blk, x, c, T, rope, frames, use_reentrant=False)
            else:
                x = blk(x, c, T, rope, frames, cache=cache, layer=i, positions=pos_list, update_cache=update_cache)
        if return_features:
            return x
        return self._head(x, c, rec_tok, T)

    # -------------------------------------------------------------- streaming
    def new_cache(self, batch: int, device=None, dtype=torch.float32) -> KVCache:
        return KVCache(self.config, batch, device, dtype)

    def step(self, cache: KVCache, recycled: torch.Tensor, noisy: torch.Tensor, control: torch.Tensor | None,
             t: torch.Tensor, frame_index: int, warp: torch.Tensor | None = None,
             update_cache: bool = True) -> torch.Tensor:
        """One latent frame with the KV cache (1 NFE). recycled, noisy: (B, C, h, w);
        control (B, T, Cc) or None; t (B,); warp (B, 3, 3) or None. Returns x0 (B, C, h, w)."""
        ctrl = None if control is None else control[:, None]
        w = None if warp is None else warp[:, None]
        pos = torch.tensor([frame_index], device=noisy.device)
        return self.forward(recycled[:, None], noisy[:, None], ctrl, t[:, None], "causal", pos, cache, warp=w,
                            update_cache=update_cache)[:, 0]


def _widen_channels(w: torch.Tensor, p: int, c_src: int, c_dst: int, dim: int) -> torch.Tensor:
    """A weight with a patch block of p*p*c_src features ordered (p1 p2 c) along ``dim`` -> the
    same block with c_dst >= c_src channels, the new channels' entries zero."""
    if c_dst == c_src:
        return w
    w = w.movedim(dim, -1)
    lead = w.shape[:-1]
    out = torch.zeros(*lead, p, p, c_dst, dtype=w.dtype)
    out[..., :c_src] = w.reshape(*lead, p, p, c_src)
    return out.flatten(-3).movedim(-1, dim)


@torch.no_grad()
def transfer_weights(dst: VideoDiT, src: VideoDiT) -> list[str]:
    """Start ``dst`` from a trained ``src`` of another control or reprojection setting (e.g. the
    avatar model from the world model), or of more latent channels (a wider autoencoder): every
    tensor whose name and shape agree is copied; the input projection is rebuilt column block by
    column block so that, with no control signal, ``dst`` predicts what ``src`` predicts for a
    still camera. For a reprojecting ``src`` the still camera's warp is the identity, so the
    warped-latent columns fold into the recycled ones (and the residual base is the recycled
    latent either way). Control columns are copied when the control kind agrees, else zeroed (the
    new control starts with no effect and learns from there). New latent channels get zero input
    columns and zero output rows: on the old channels ``dst`` predicts what ``src`` predicts, and
    on the new ones it copies the recycled latent (the residual base). A ``dst`` that packs r times
    fewer video frames per latent (a ``transfer_autoencoder``-made autoencoder) gets, for each of
    its frames, the summed control columns of the r old frames it stands for: fed a frame's
    control r times over, ``src`` sees the same numbers (the video in slow motion, as the
    transferred autoencoder does). Returns the names of the tensors left at ``dst``'s
    initialisation."""
    sc, dc = src.config, dst.config
    if sc.frames_per_latent % dc.frames_per_latent:
        raise ValueError(f"transfer_weights packs fewer frames per latent by a whole factor: "
                         f"{sc.frames_per_latent} -> {dc.frames_per_latent} is not one")
    if (sc.patch, sc.dim, sc.depth, sc.heads) != (dc.patch, dc.dim, dc.depth, dc.heads) \
            or dc.latent_channels < sc.latent_channels:
        raise ValueError("transfer_weights needs the same patch, width, depth and heads, and at least "
                         "the same latent channels")
    p, c_src, c_dst = dc.patch, sc.latent_channels, dc.latent_channels
    P = p * p * c_src
    own, theirs = dst.state_dict(), src.state_dict()
    left = []
    for k, v in own.items():
        if k.startswith("x_in.") or k.startswith("out."):
            continue
        if k in theirs and theirs[k].shape == v.shape:
            v.copy_(theirs[k])
        else:
            left.append(k)
    # out rows (p1 p2 c): the new channels' rows zero
    dst.out.weight.copy_(_widen_channels(src.out.weight, p, c_src, c_dst, 0))
    dst.out.bias.copy_(_widen_channels(src.out.bias, p, c_src, c_dst, 0))
    # x_in columns: [recycled P | warped P (reproject) | noisy P | control Cc]
    w_src, w_dst = src.x_in.weight, dst.x_in.weight                     # (D, in)
    rec, off = w_src[:, :P], P
    warped = None
    if sc.reproject:
        warped, off = w_src[:, P:2 * P], 2 * P
    noisy, ctrl = w_src[:, off:off + P], w_src[:, off + P:]
    new = [rec + warped if warped is not None and not dc.reproject else rec]
    if dc.reproject:
        new.append(warped if warped is not None else torch.zeros_like(rec))
    new.append(noisy)
    new = [_widen_channels(w, p, c_src, c_dst, 1) for w in new]
    if dc.control_features:
        same = dc.control == sc.control
        if same and dc.frames_per_latent != sc.frames_per_latent:
            ctrl = _pack_control_frames(ctrl, sc.frames_per_latent, dc.frames_per_latent)
        new.append(ctrl if same else torch.zeros(w_dst.shape[0], dc.control_features, dtype=w_dst.dtype))
        if not same:
            left.append("x_in.weight[control]")
    w_dst.copy_(torch.cat(new, 1))
    dst.x_in.bias.copy_(src.x_in.bias)
    return left


def _pack_control_frames(w: torch.Tensor, fs: int, fd: int) -> torch.Tensor:
    """(D, fs Cf) control columns, frame-major -> (D, fd Cf): each new frame the sum of the
    fs / fd old frames it stands for."""
    return rearrange(w, "d (f r c) -> d f r c", f=fd, r=fs // fd).sum(2).flatten(1)
