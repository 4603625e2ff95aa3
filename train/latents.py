"""Latent caches: clips encoded once by the trained autoencoder, so DiT stages never run it.

``python -m train.latents --ae DIR --shards DIR/train --out DIR/latents-train.npz``
stores per clip (normalised latents, float16):
  chunks (N, k, C, h, w)   latent frames 1..k of the clip (4 video frames each)
  stills (N, S, C, h, w)   the first-frame code of video frame 4 j for j in ``starts``
  control (N, 1 + k, T, Cc) per-token control features of latent frames 0..k
  warp (N, 1 + k, 3, 3)    camera sources: maps from latent frame j's camera to j - 1's
                           (controls.camera.clip_reprojection_maps); identities otherwise
  frame_maps (N, k, fpl, 3, 3)  latent frame j's video frames, each to the last frame before them
                           (controls.camera.clip_frame_maps: what a reference decoder warps); identities
                           for sources without a camera
A training window of K + 1 latent frames starting at j is [stills[j], chunks[j : j + K]] with
control [0, control[j + 1 : j + 1 + K]] and warp [I, warp[j + 1 : j + 1 + K]].
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from controls.camera import clip_camera_tokens, clip_frame_maps, clip_reprojection_maps
from data.shards import ShardReader
from model.autoencoder import VideoAutoencoder
from model.runtime import add_dtype_argument, autocast, compute_dtype
from train.data import to_pixels


def control_tokens(reader: ShardReader, i: int, control: str, grid: int, fpl: int) -> np.ndarray:
    """(1 + k, T, Cc) control features of clip i (k latent frames after the first)."""
    F, H, W, _ = reader.frame_shape
    F = 1 + fpl * ((F - 1) // fpl)
    if control == "camera":
        return clip_camera_tokens(reader.truth(i, "K")[:F], reader.truth(i, "w2c")[:F], W, H, grid, fpl)
    if control == "pose":
        from controls.pose import clip_pose_tokens

        return clip_pose_tokens(reader.truth(i, "landmarks")[:F], grid, fpl)
    return np.zeros((1 + (F - 1) // fpl, grid * grid, 0), np.float32)


def camera_maps(reader: ShardReader, i: int, fpl: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip i's maps, from its cameras read once: (1 + k, 3, 3) reprojection maps of each latent frame
    to the one before (the DiT's), and (k, fpl, 3, 3) maps of each video frame to the last frame of
    the latent before it (a reference decoder's); identities for sources without a camera."""
    F, H, W, _ = reader.frame_shape
    F = 1 + fpl * ((F - 1) // fpl)
    k = (F - 1) // fpl
    K, w2c = reader.truth(i, "K"), reader.truth(i, "w2c")
    if K is None or w2c is None:
        eye = np.eye(3, dtype=np.float32)
        return np.tile(eye, (1 + k, 1, 1)), np.tile(eye, (k, fpl, 1, 1))
    return clip_reprojection_maps(K[:F], w2c[:F], W, H, fpl), clip_frame_maps(K[:F], w2c[:F], W, H, fpl)


@torch.no_grad()
def encode_shards(ae: VideoAutoencoder, shards: str | Path, out: str | Path, control: str, grid: int,
                  starts: tuple[int, ...], limit: int | None = None, dtype: str | torch.dtype = "auto") -> Path:
    reader = ShardReader(shards)
    fpl = ae.config.frames_per_latent
    F = 1 + fpl * ((reader.frame_shape[0] - 1) // fpl)
    n = len(reader) if limit is None else min(limit, len(reader))
    starts = tuple(j for j in starts if fpl * j + fpl < F)            # a start needs a chunk after it
    ae.eval()
    dev = next(ae.parameters()).device
    arrays: dict[str, np.ndarray] = {}

    def put(name: str, i: int, value: np.ndarray) -> None:
        # preallocated outputs: small long-lived allocations between the big per-clip temporaries
        # would fragment the heap (with model.runtime.keep_freed_memory it grew 18 MB a clip)
        if name not in arrays:
            arrays[name] = np.empty((n, *value.shape), value.dtype)
        arrays[name][i] = value

    with autocast(compute_dtype(dtype, dev), dev):
        for i in tqdm(range(n), desc=f"encode {Path(shards).name}", mininterval=10):
            x = to_pixels(reader.frames(i)[:F])[None].to(dev)          # (1, F, 3, H, W)
            z = ae.normalize(ae.encode(x).float())[0]                   # (1 + k, C, h, w)
            s = ae.normalize(ae.encode_image(x[0, [fpl * j for j in starts]]).float())
            put("chunks", i, z[1:].half().cpu().numpy())
            put("stills", i, s.half().cpu().numpy())
            put("control", i, control_tokens(reader, i, control, grid, fpl).astype(np.float16))
            warp, frame_maps = camera_maps(reader, i, fpl)
            put("warp", i, warp)
            put("frame_maps", i, frame_maps)
            del x, z, s
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # written under a temporary name and renamed: a reader never sees a half-written cache
    tmp = out.with_name(f"{out.stem}.tmp-{os.getpid()}.npz")
    np.savez(tmp, **arrays, starts=np.array(starts), seeds=np.array([reader.meta(i).get("seed", i) for i in range(n)]))
    os.replace(tmp, out)
    return out


@dataclass
class LatentWindows:
    """Random training windows from a latent cache, as float32 tensors."""
    chunks: np.ndarray
    stills: np.ndarray
    control: np.ndarray
    starts: np.ndarray
    warp: np.ndarray
    frame_maps: np.ndarray | None = None     # (N, k, fpl, 3, 3); None in caches made before it

    @classmethod
    def load(cls, path: str | Path) -> "LatentWindows":
        with np.load(path) as z:
            return cls(z["chunks"], z["stills"], z["control"], z["starts"], z["warp"],
                       z["frame_maps"] if "frame_maps" in z.files else None)

    @classmethod
    def concat(cls, parts: list["LatentWindows"]) -> "LatentWindows":
        """One set of windows from several caches of the same latent layout (a mix of sources)."""
        if len(parts) == 1:
            return parts[0]
        if any(not np.array_equal(p.starts, parts[0].starts) for p in parts):
            raise ValueError("latent caches to mix must share their window starts")
        maps = None if any(p.frame_maps is None for p in parts) else np.concatenate([p.frame_maps for p in parts])
        return cls(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("chunks", "stills", "control")),
                   parts[0].starts, np.concatenate([p.warp for p in parts]), maps)

    def __len__(self) -> int:
        return self.chunks.shape[0]

    def window(self, i: int, s: int, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Clip i, start index s into ``starts``, K latent frames after the first:
        (first-frame code, K chunks, control (1 + K, T, Cc), warp maps (1 + K, 3, 3))."""
        j = int(self.starts[s])
        if j + K > self.chunks.shape[1]:
            raise ValueError(f"window of {K} from latent {j} runs past the clip ({self.chunks.shape[1]})")
        c = self.control[i, j + 1:j + 1 + K]
        w = np.concatenate([np.eye(3, dtype=np.float32)[None], self.warp[i, j + 1:j + 1 + K]])
        return self.stills[i, s], self.chunks[i, j:j + K], np.concatenate([np.zeros_like(c[:1]), c]), w

    def sample(self, batch: int, K: int, rng: np.random.Generator,
               with_frame_maps: bool = False) -> tuple[torch.Tensor, ...]:
        """z (B, 1 + K, C, h, w) with the first frame's code first; control (B, 1 + K, T, Cc);
        warp (B, 1 + K, 3, 3); with ``with_frame_maps`` also the K latent frames' video frames'
        maps (B, K, fpl, 3, 3), each to the last frame before its latent."""
        if with_frame_maps and self.frame_maps is None:
            raise ValueError("this latent cache was made without frame maps: delete it to encode it again")
        valid = [s for s, j in enumerate(self.starts) if j + K <= self.chunks.shape[1]]
        if not valid:
            raise ValueError(f"no window of {K} latent frames fits clips of {self.chunks.shape[1]}")
        zs, cs, ws, ms = [], [], [], []
        for _ in range(batch):
            i, s = int(rng.integers(len(self))), valid[int(rng.integers(len(valid)))]
            first, chunks, ctrl, w = self.window(i, s, K)
            zs.append(np.concatenate([first[None], chunks]))
            cs.append(ctrl)
            ws.append(w)
            if with_frame_maps:
                j = int(self.starts[s])
                ms.append(self.frame_maps[i, j:j + K])
        out = (torch.from_numpy(np.stack(zs)).float(), torch.from_numpy(np.stack(cs)).float(),
               torch.from_numpy(np.stack(ws)).float())
        return out + (torch.from_numpy(np.stack(ms)).float(),) if with_frame_maps else out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ae", required=True, help="trained autoencoder directory")
    p.add_argument("--shards", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--control", choices=("camera", "pose", "none"), default="camera")
    p.add_argument("--grid", type=int, default=8, help="tokens per side")
    p.add_argument("--starts", type=int, nargs="+", default=list(range(0, 17, 2)))
    p.add_argument("--limit", type=int, default=None)
    add_dtype_argument(p)
    a = p.parse_args(argv)
    encode_shards(VideoAutoencoder.from_pretrained(a.ae), a.shards, a.out, a.control, a.grid, tuple(a.starts), a.limit,
                  a.dtype)


if __name__ == "__main__":
    main()
