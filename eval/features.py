"""FVD-lite: a small video network trained only on ground-truth clips, whose features score videos.

No pretrained video network (I3D for FVD) can be had offline, so we train our own: a 3D-conv
encoder over 16 frames at 64x64 that must tell the content (world kind, photo, avatar), the time
of day, and the motion (camera controls, or the landmarks' movement) of a window of ground
truth. Its penultimate features summarise what a clip looks like and how it moves; the Fréchet
distance between the feature distributions of generated and ground-truth windows is FVD-lite.

    python -m eval.features --data runs/data/world-128/train runs/data/avatar-128/train \
        --val runs/data/world-128/val --out assets/eval/features --steps 3000

Shapes: B batch, F frames, H, W pixels, D feature width.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn
from einops import rearrange

from data.shards import ShardReader
from model.io import Pretrained

TIMES = ("dawn", "morning", "noon", "afternoon", "sunset")
MOTION_SCALE = np.array([4.0, 1.5, 0.5, 0.3], np.float32)    # d_yaw, d_pitch, forward, strafe (trajectories.py)


@dataclass
class FeatureNetConfig:
    """Sizes and label sets of the feature network."""
    frames: int = 16
    size: int = 64
    widths: tuple[int, ...] = (16, 32, 64, 128)
    features: int = 128                               # D of the FVD-lite features
    contents: tuple[str, ...] = ("world/hills", "world/mountains", "world/islands", "world/canyon",
                                 "world/city", "photo", "avatar")
    motion: int = 4                                   # motion targets per window


class VideoFeatureNet(Pretrained):
    """3D-conv video encoder with content, time-of-day and motion heads (training only)."""
    config_class = FeatureNetConfig

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        self.config = c = config
        layers, cin = [], 3
        for i, w in enumerate(c.widths):
            stride = (1 if i == 0 else 2, 2, 2)             # time kept at first, then halved
            layers += [nn.Conv3d(cin, w, 3, stride=stride, padding=1), nn.GroupNorm(8, w), nn.SiLU(),
                       nn.Conv3d(w, w, 3, padding=1), nn.GroupNorm(8, w), nn.SiLU()]
            cin = w
        self.body = nn.Sequential(*layers)
        self.proj = nn.Linear(cin, c.features)
        self.content = nn.Linear(c.features, len(c.contents))
        self.time = nn.Linear(c.features, len(TIMES))
        self.motion = nn.Linear(c.features, c.motion)

    def prepare(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, H, W, 3) uint8 -> (B, 3, F, size, size) float in [-1, 1] (area resize)."""
        x = rearrange(frames.float(), "b f h w c -> (b f) c h w") / 127.5 - 1.0
        if x.shape[-1] != self.config.size or x.shape[-2] != self.config.size:
            x = Fn.interpolate(x, size=(self.config.size, self.config.size), mode="area")
        return rearrange(x, "(b f) c h w -> b c f h w", b=frames.shape[0])

    def features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, F, H, W, 3) uint8 frames -> (B, D) features."""
        h = self.body(self.prepare(frames))
        return self.proj(h.mean((2, 3, 4)))

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.features(frames)
        g = Fn.silu(f)
        return {"content": self.content(g), "time": self.time(g), "motion": self.motion(g)}


# ----------------------------------------------------------------------------- labels
def window_labels(reader: ShardReader, i: int, start: int, frames: int, contents: tuple[str, ...]) -> dict:
    """Targets of a window of clip i: content index, time index (-1 = none), motion (+ mask)."""
    meta = reader.meta(i)
    src = meta.get("source", "world")
    name = f"world/{meta.get('kind')}" if src == "world" else src
    time_idx = TIMES.index(meta["time_of_day"]) if meta.get("time_of_day") in TIMES else -1
    motion = np.zeros(4, np.float32)
    mask = 0.0
    if src in ("world", "photo"):
        c = np.asarray(reader.truth(i, "controls"))[start + 1:start + frames]
        motion = (c[:, [0, 1, 3, 4]].mean(0) / MOTION_SCALE).astype(np.float32)
        mask = 1.0
    elif reader.truth(i, "landmarks") is not None:
        pts = np.asarray(reader.truth(i, "landmarks"))[start:start + frames][:, [15, 16, 23, 24]]  # wrists, hips
        # a landmark out of view has visibility 0 and an arbitrary position: only steps between
        # two visible positions count (without this one clip's labels reached 800 and training diverged)
        ok = (pts[:-1, :, 3] > 0.5) & (pts[1:, :, 3] > 0.5)                                   # (F-1, 4)
        v = (np.diff(pts[..., :2], axis=0) * ok[..., None]).sum(0) / np.maximum(ok.sum(0), 1)[:, None]
        motion = np.clip(np.array([v[0, 0] + v[1, 0], v[0, 1] + v[1, 1], v[2, 0] + v[3, 0], v[2, 1] + v[3, 1]],
                                  np.float32) * 50.0, -3.0, 3.0)
        mask = 1.0
    return {"content": contents.index(name) if name in contents else -1, "time": time_idx,
            "motion": motion, "motion_mask": mask}


class WindowSampler:
    """Random 16-frame ground-truth windows (with labels) from several shard directories."""

    def __init__(self, roots: list[str], cfg: FeatureNetConfig):
        self.readers = [ShardReader(r) for r in roots]
        self.cfg = cfg

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict]:
        frames, labels = [], []
        for _ in range(batch):
            r = self.readers[int(rng.integers(len(self.readers)))]
            i = int(rng.integers(len(r)))
            s = int(rng.integers(0, r.frame_shape[0] - self.cfg.frames + 1))
            frames.append(np.asarray(r.frames(i)[s:s + self.cfg.frames]))
            labels.append(window_labels(r, i, s, self.cfg.frames, self.cfg.contents))
        out = {k: torch.tensor(np.stack([lab[k] for lab in labels])) for k in labels[0]}
        return torch.from_numpy(np.stack(frames)), out


def feature_loss(net: VideoFeatureNet, frames: torch.Tensor, labels: dict) -> tuple[torch.Tensor, dict]:
    out = net(frames)
    ce = Fn.cross_entropy(out["content"].float(), labels["content"].long(), ignore_index=-1)
    tl = Fn.cross_entropy(out["time"].float(), labels["time"].long(), ignore_index=-1) \
        if (labels["time"] >= 0).any() else out["time"].sum() * 0
    m = labels["motion_mask"].float()[:, None]
    ml = ((out["motion"].float() - labels["motion"].float()) ** 2 * m).sum() / m.sum().clamp_min(1) / 4
    acc = (out["content"].argmax(-1) == labels["content"]).float().mean()
    return ce + tl + ml, {"content_ce": ce.item(), "time_ce": tl.item(), "motion_mse": ml.item(),
                          "content_acc": acc.item()}


def train_features(data: list[str], val: list[str], out: str, steps: int, batch: int = 16, lr: float = 1e-3,
                   seed: int = 0, log_every: int = 50) -> dict:
    """Train the feature network on ground truth only; writes ``out`` and returns val metrics."""
    torch.manual_seed(seed)
    cfg = FeatureNetConfig()
    net = VideoFeatureNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
    train, valid = WindowSampler(data, cfg), WindowSampler(val, cfg)
    rng = np.random.default_rng(seed)
    t0 = time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / steps)))
        frames, labels = train.sample(batch, rng)
        # fp32: under bf16 autocast this CPU's Conv3d backward blew gradients up to 1e35 within a
        # few steps (NaN by step 3); fp32 is stable and only 7% slower for a net this small
        loss, m = feature_loss(net, frames, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if (step + 1) % log_every == 0:
            print(json.dumps({"step": step + 1, "s": round(time.time() - t0), **{k: round(v, 4) for k, v in m.items()}}),
                  flush=True)
    net.eval()
    vrng = np.random.default_rng(1)
    metrics = []
    with torch.no_grad():
        for _ in range(8):
            metrics.append(feature_loss(net, *valid.sample(batch, vrng))[1])
    res = {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}
    net.save_pretrained(out)
    (Path(out) / "training.json").write_text(json.dumps({"data": data, "val_data": val, "steps": steps,
                                                          "batch": batch, "lr": lr,
                                                          "seconds": round(time.time() - t0), "val": res}, indent=2))
    return res


# ----------------------------------------------------------------------------- scoring
@torch.no_grad()
def window_features(net: VideoFeatureNet, video: np.ndarray, stride: int | None = None) -> np.ndarray:
    """(F, H, W, 3) uint8 video -> (n, D) features of its windows of ``config.frames`` frames."""
    n = net.config.frames
    stride = stride or n
    starts = list(range(0, video.shape[0] - n + 1, stride))
    feats = []
    with torch.autocast("cpu", enabled=False):       # fp32, as trained (no_grad: the decorator)
        for i in range(0, len(starts), 8):
            w = np.stack([video[s:s + n] for s in starts[i:i + 8]])
            feats.append(net.features(torch.from_numpy(w)).float().numpy())
    return np.concatenate(feats) if feats else np.zeros((0, net.config.features), np.float32)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (n, D) and b (m, D)
    (Heusel et al. 2017, the FID/FVD formula; eval/stats.py ``frechet`` computes it)."""
    from eval.stats import frechet

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return frechet(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", nargs="+", required=True, help="training shard directories (ground truth)")
    p.add_argument("--val", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    a = p.parse_args(argv)
    print(json.dumps(train_features(a.data, a.val, a.out, a.steps, a.batch, a.lr)))


if __name__ == "__main__":
    main()
