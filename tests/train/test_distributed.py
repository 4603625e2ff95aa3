"""Two CPU processes (gloo) train a few steps with DDP, or with FSDP2, and end with identical weights;
an FSDP run resumes exactly, matches DDP and exports loadable full models."""
import os
import shutil

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

from model.dit import VideoDiT
from model.discriminator import Discriminator
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


# ============================================================================= FSDP2
# One pair of ranks runs every FSDP scenario: starting the processes costs more than the training.
FSDP_RUNS = {  # run dir -> (stage, [(steps, fsdp) of each call: a second call resumes the first])
    "teacher": ("teacher", [(2, True)]),
    "teacher-resumed": ("teacher", [(1, True), (2, True)]),
    "teacher-from-ddp": ("teacher", [(1, False), (2, True)]),
    "adversarial": ("adversarial", [(1, True), (2, True)]),
    "adversarial-ddp": ("adversarial", [(2, False)]),
}


def _fsdp_worker(rank: int, world: int, store: str, data: str, root: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        for run, (stage, calls) in FSDP_RUNS.items():
            def dump(models, run=run):  # the full weights as this rank gathers them
                for name, m in models.items():
                    full = get_model_state_dict(m, options=StateDictOptions(full_state_dict=True))
                    save_file(full, f"{root}/{run}/{name}-rank{rank}.safetensors")

            init = f"{root}/base/teacher/final/model" if stage == "adversarial" else ""  # the generator's start
            for steps, fsdp in calls:
                cfg = resolve("tiny", stage, dict(data=data, run_dir=f"{root}/{run}", init=init, fsdp=fsdp,
                                                  ae=f"{root}/base/autoencoder/final/model", steps=steps,
                                                  ckpt_every=1, eval_every=100, ema=0.9))
                train(cfg, on_end=dump if fsdp and steps == calls[-1][0] else None)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def fsdp_runs(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    base = root / "base"
    # single process: the autoencoder, the latent caches, and a DiT the adversarial stage starts from
    train(resolve("tiny", "autoencoder", dict(data=str(tiny_data), run_dir=str(base))))
    train(resolve("tiny", "teacher", dict(data=str(tiny_data), run_dir=str(base), steps=1)))
    for run, (stage, _) in FSDP_RUNS.items():
        (root / run).mkdir()
        (root / run / "latents").symlink_to(base / "latents")
        if stage == "adversarial":  # its discriminator starts from the adapted model
            shutil.copytree(base / "teacher" / "final", root / run / "adapt" / "final")
    mp.start_processes(_fsdp_worker, args=(2, str(root / "store"), str(tiny_data), str(root)),
                       nprocs=2, join=True, start_method="spawn")
    return root


def _assert_same(a: dict, b: dict, rtol: float = 0.0, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=rtol, atol=atol, msg=k)


def _checkpoint(run_dir, step: int = 2):
    return run_dir / "checkpoints" / f"step-{step:07d}"


@pytest.mark.parametrize("run,stage,models", [("teacher", "teacher", ["model"]),
                                              ("adversarial", "adversarial", ["generator", "discriminator"])])
def test_fsdp_ranks_end_with_identical_full_weights(fsdp_runs, run, stage, models):
    for name in models:
        a = load_file(str(fsdp_runs / run / f"{name}-rank0.safetensors"))
        b = load_file(str(fsdp_runs / run / f"{name}-rank1.safetensors"))
        _assert_same(a, b)
        # rank 0 wrote them to the checkpoint, and training moved them
        ckpt = _checkpoint(fsdp_runs / run / stage)
        _assert_same(a, load_file(str(ckpt / name / "model.safetensors")))
        before = load_file(str(_checkpoint(fsdp_runs / run / stage, 1) / name / "model.safetensors"))
        assert any(not torch.equal(a[k], before[k]) for k in a), name
    # evaluation ran on both ranks together, its files and metrics came from rank 0 only
    assert len((fsdp_runs / run / stage / "eval.jsonl").read_text().splitlines()) == len(FSDP_RUNS[run][1])
    assert list((fsdp_runs / run / stage / "samples").glob("*.mp4"))


def test_fsdp_export_loads_with_the_ema_weights(fsdp_runs):
    for run, stage, name, cls in [("teacher", "teacher", "model", VideoDiT),
                                  ("adversarial", "adversarial", "generator", VideoDiT),
                                  ("adversarial", "adversarial", "discriminator", Discriminator)]:
        final = cls.from_pretrained(fsdp_runs / run / stage / "final" / name).state_dict()
        state = load_file(str(_checkpoint(fsdp_runs / run / stage) / "state.safetensors"))
        if name == "discriminator":  # no EMA: the trained weights
            expected = load_file(str(_checkpoint(fsdp_runs / run / stage) / name / "model.safetensors"))
        else:
            expected = {k[len("extra.ema."):]: v for k, v in state.items() if k.startswith("extra.ema.")}
        _assert_same(final, expected)


@pytest.mark.parametrize("run", ["teacher-resumed", "teacher-from-ddp"])
def test_fsdp_resume_equals_uninterrupted(fsdp_runs, run):
    """An FSDP run resumed from its own checkpoint, or from a DDP run's, ends as an uninterrupted one."""
    a, b = _checkpoint(fsdp_runs / "teacher" / "teacher"), _checkpoint(fsdp_runs / run / "teacher")
    _assert_same(load_file(str(a / "model" / "model.safetensors")), load_file(str(b / "model" / "model.safetensors")))
    _assert_same(load_file(str(a / "state.safetensors")), load_file(str(b / "state.safetensors")))  # Adam, EMA, RNG
    # the second call resumed at step 1 instead of training again from the start
    steps = [r.split(",")[0] for r in (fsdp_runs / run / "teacher" / "log.csv").read_text().splitlines()]
    assert steps == ["step", "1", "2"]


def test_fsdp_adversarial_resumed_matches_ddp(fsdp_runs):
    """Two models, two optimisers, frozen parameters, several forwards a phase: FSDP (resumed at step 1)
    trains as DDP does (same batches and noise per rank; only summation order may differ)."""
    a = _checkpoint(fsdp_runs / "adversarial" / "adversarial")
    b = _checkpoint(fsdp_runs / "adversarial-ddp" / "adversarial")
    for name in ("generator", "discriminator"):
        _assert_same(load_file(str(a / name / "model.safetensors")), load_file(str(b / name / "model.safetensors")),
                     rtol=1e-5, atol=1e-6)
    _assert_same(load_file(str(a / "state.safetensors")), load_file(str(b / "state.safetensors")), rtol=1e-5, atol=1e-6)
