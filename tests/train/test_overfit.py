"""The recipe learns: on a handful of tiny clips each stage's objective moves the right way.

One chain (autoencoder -> teacher -> adapt -> distill -> adversarial) on the tiny preset, a few
hundred steps each at a high learning rate. Each objective is measured on the same fixed batches
(fixed seeds: same clips, noise and t) before and after its stage trains, so the comparison is not
at the mercy of the random t of single training steps. Tiny world clips barely move, so the
adapted model is almost exact in one step; the distillation and adversarial checks therefore
start their student from perturbed weights, leaving something to distil and to discriminate.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from model.discriminator import Discriminator
from model.dit import VideoDiT
from model.runtime import autocast, compute_dtype
from train.config import resolve
from train.loop import train
from train.stages import build_stage

SEEDS = range(8)


def _measure(stage, phase: str, keys: tuple[str, ...]) -> dict:
    """Mean of the stage's loss metrics over fixed batches, without gradients."""
    out = {k: [] for k in keys}
    with torch.no_grad(), autocast(compute_dtype()):
        for s in SEEDS:
            if phase.startswith("gen"):                      # a generator phase follows its D phase
                stage.loss("disc" + phase[3:], 0, np.random.default_rng(1000 + s), torch.Generator().manual_seed(s))
            loss, metrics = stage.loss(phase, 0, np.random.default_rng(1000 + s), torch.Generator().manual_seed(1000 + s))
            metrics["loss"] = float(loss)
            for k in keys:
                out[k].append(metrics[k])
    return {k: float(np.mean(v)) for k, v in out.items()}


def _perturbed(src: Path, dst: Path, std: float) -> Path:
    m = VideoDiT.from_pretrained(src)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    m.save_pretrained(dst)
    return dst


@pytest.fixture(scope="module")
def chain(tiny_data, tmp_path_factory):
    run = tmp_path_factory.mktemp("overfit")

    def cfg(stage, **kw):
        base = dict(data=str(tiny_data), run_dir=str(run), latent_clips=2, ckpt_every=10000, eval_every=10000,
                    warmup=5, batch_size=4)
        base.update(kw)
        return resolve("tiny", stage, base)

    results = {}
    train(cfg("autoencoder", steps=40, lr=2e-3))
    for stage in ("teacher", "adapt"):
        c = cfg(stage, steps=300, lr=2e-3)
        st = build_stage(c)
        before = _measure(st, "main", ("loss",))
        train(c)
        st.dit.load_state_dict(VideoDiT.from_pretrained(run / stage / "final" / "model").state_dict())
        results[stage] = (before, _measure(st, "main", ("loss",)))
    adapt = run / "adapt" / "final" / "model"
    c = cfg("distill", steps=150, lr=1e-3, distill_steps=4, teacher=str(adapt),
            init=str(_perturbed(adapt, run / "student", 0.05)))
    st = build_stage(c)
    gap_before = st.evaluate(0, run / "distill-eval")["ode_gap_mse"]
    train(c)
    st.dit.load_state_dict(VideoDiT.from_pretrained(run / "distill" / "final" / "model").state_dict())
    results["distill"] = (gap_before, st.evaluate(1, run / "distill-eval")["ode_gap_mse"])
    c = cfg("adversarial", steps=60, lr=1e-4, d_lr=3e-3, r_lambda=1.0,
            init=str(_perturbed(adapt, run / "generator", 0.05)))
    st = build_stage(c)
    before = {**_measure(st, "disc0", ("d_real", "d_fake")), **_measure(st, "gen0", ("g_loss",))}
    train(c)
    st.disc.load_state_dict(Discriminator.from_pretrained(run / "adversarial" / "final" / "discriminator").state_dict())
    st.dit.load_state_dict(VideoDiT.from_pretrained(run / "adversarial" / "final" / "generator").state_dict())
    after = {**_measure(st, "disc0", ("d_real", "d_fake")), **_measure(st, "gen0", ("g_loss",))}
    results["adversarial"] = (before, after)
    return results


@pytest.mark.parametrize("stage", ["teacher", "adapt"])
def test_diffusion_losses_fall_well_below_their_start(chain, stage):
    before, after = chain[stage]
    assert after["loss"] < 0.5 * before["loss"], (before, after)


def test_distillation_brings_the_one_step_sample_to_the_multi_step_one(chain):
    before, after = chain["distill"]
    assert after < 0.5 * before, (before, after)


def test_adversarial_discriminator_separates_and_generator_responds(chain):
    before, after = chain["adversarial"]
    gap_before = before["d_real"] - before["d_fake"]
    gap_after = after["d_real"] - after["d_fake"]
    assert gap_after > 0 and gap_after > gap_before + 0.1, (before, after)   # D tells real from generated
    assert after["g_loss"] > before["g_loss"], (before, after)                # and G's loss responds to it
