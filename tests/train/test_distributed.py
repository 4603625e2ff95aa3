"""Two CPU processes (gloo) train a few steps with DDP and end with identical weights."""
import os

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from train.config import resolve
from train.loop import train


def _worker(rank: int, world: int, store: str, data: str, run: str, out: str, stage: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        def dump(models):
            for name, m in models.items():
                save_file({k: v.contiguous() for k, v in m.state_dict().items()}, f"{out}/{name}-rank{rank}.safetensors")

        cfg = resolve("tiny", stage, dict(data=data, run_dir=run, steps=3, ckpt_every=3, eval_every=100))
        train(cfg, on_end=dump)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("stage", ["autoencoder", "teacher"])
def test_two_ranks_end_with_identical_weights(tiny_data, tmp_path, stage):
    run = tmp_path / "run"
    if stage == "teacher":  # the teacher needs an autoencoder first (single process)
        train(resolve("tiny", "autoencoder", dict(data=str(tiny_data), run_dir=str(run))))
    mp.start_processes(_worker, args=(2, str(tmp_path / "store"), str(tiny_data), str(run), str(tmp_path), stage),
                       nprocs=2, join=True, start_method="spawn")
    name = "model"
    a = load_file(str(tmp_path / f"{name}-rank0.safetensors"))
    b = load_file(str(tmp_path / f"{name}-rank1.safetensors"))
    for k in a:
        assert (a[k] == b[k]).all(), k
    # and training moved them (the ranks did not just keep their identical initial weights)
    assert (run / stage / "log.csv").read_text().count("\n") >= 3
