"""bench.compare's timed paths run on a tiny network and produce what they claim."""
import torch

from bench.compare import time_cached, time_no_cache, time_skyreels_df
from model.config import replace
from model.dit import PRESETS, VideoDiT
from model.runtime import compute_dtype


def _dit(**kw):
    return VideoDiT(replace(PRESETS["tiny"], **kw)).eval()


def test_every_cached_and_uncached_method_runs():
    dit = _dit(reproject=True)
    for ms in (time_cached(dit, 3, 1, torch.float32), time_cached(dit, 3, 8, torch.float32),
               time_no_cache(dit, 9, torch.float32)):   # 9 steps: past the window of 2
        assert ms > 0


def test_diffusers_skyreels_pipeline_runs_with_our_sizes():
    assert time_skyreels_df(_dit(), compute_dtype(), latent_frames=3, steps=2) > 0
