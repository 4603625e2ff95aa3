"""Each loss behaves as its formula says."""
import math

import torch
import torch.nn.functional as Fn

from train import losses


def test_relativistic_pairing_formulas():
    d_fake, d_real = torch.tensor([0.3, -1.0]), torch.tensor([1.0, 0.5])
    # App. B: L = f(D(fake) - D(real)), f_G(x) = -log(1 + e^-x) (maximised) -> softplus(-x) minimised
    g = torch.mean(torch.log1p(torch.exp(-(d_fake - d_real))))
    d = torch.mean(torch.log1p(torch.exp(-(d_real - d_fake))))
    assert torch.allclose(losses.relativistic_g_loss(d_fake, d_real), g)
    assert torch.allclose(losses.relativistic_d_loss(d_fake, d_real), d)
    # the discriminator's loss falls as it separates real from fake, the generator's rises
    wider = d_real + 1.0
    assert losses.relativistic_d_loss(d_fake, wider) < losses.relativistic_d_loss(d_fake, d_real)
    assert losses.relativistic_g_loss(d_fake, wider) > losses.relativistic_g_loss(d_fake, d_real)
    # at D(real) == D(fake) both equal log 2
    z = torch.zeros(3)
    assert math.isclose(losses.relativistic_g_loss(z, z).item(), math.log(2), rel_tol=1e-6)


def test_approximate_penalty_matches_gradient_norm_on_a_linear_discriminator():
    """For D(x) = w.x: E||D(x + sigma n) - D(x)||^2 = sigma^2 ||w||^2 = sigma^2 * exact R1."""
    torch.manual_seed(0)
    w = torch.randn(16)
    x = torch.randn(20000, 16, requires_grad=True)
    sigma = 0.1
    d = x @ w
    approx = losses.approx_r_penalty(d, (x + sigma * torch.randn_like(x)) @ w)
    exact = losses.exact_r_penalty(d, x)
    assert math.isclose(exact.item(), w.pow(2).sum().item(), rel_tol=1e-5)
    assert math.isclose(approx.item(), sigma ** 2 * exact.item(), rel_tol=0.05)


def test_exact_penalty_of_a_quadratic():
    x = torch.randn(8, 4, requires_grad=True)
    d = (x ** 2).sum(1)                        # grad = 2x
    assert torch.allclose(losses.exact_r_penalty(d, x), (4 * x.detach() ** 2).sum(1).mean())


def test_shift():
    t = torch.linspace(0, 1, 11)
    assert torch.allclose(losses.shift_t(t, 1.0), t)
    s = losses.shift_t(t, 3.0)
    assert s[0] == 0 and math.isclose(s[-1].item(), 1.0, rel_tol=1e-6)
    assert (s >= t).all()                      # s > 1 moves t towards noise
    assert (torch.diff(s) > 0).all()


def test_v_loss_equals_v_space_mse():
    torch.manual_seed(1)
    x0, eps, x0_hat = torch.randn(4, 3, 2, 5), torch.randn(4, 3, 2, 5), torch.randn(4, 3, 2, 5)
    t = torch.rand(4, 3) * 0.9 + 0.1
    x_t = losses.flow_interpolate(x0, eps, t)
    v, v_hat = eps - x0, (x_t - x0_hat) / t[..., None, None]
    assert torch.allclose(losses.v_loss_from_x0(x0_hat, x0, t, t_min=0.0), Fn.mse_loss(v_hat, v), rtol=1e-5)


def test_ssim_and_reconstruction():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert math.isclose(losses.ssim(x, x).item(), 1.0, rel_tol=1e-5)
    assert losses.reconstruction_loss(x, x).item() < 1e-5
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    assert losses.ssim(x, y) < 0.9
    # fp32 inside autocast: no NaN from cancelling bf16 variances
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(losses.ssim(x, y))


def test_mismatch_term_rewards_a_discriminator_that_checks_the_controls():
    d_real, d_wrong = torch.tensor([2.0, 0.5]), torch.tensor([0.0, 0.5])
    assert torch.allclose(losses.mismatch_d_loss(d_wrong, d_real), Fn.softplus(-(d_real - d_wrong)).mean())
    # indifferent to the controls: log 2; preferring the true controls: lower
    assert math.isclose(losses.mismatch_d_loss(d_real, d_real).item(), math.log(2), rel_tol=1e-6)
    assert losses.mismatch_d_loss(d_wrong - 1, d_real) < losses.mismatch_d_loss(d_wrong, d_real)


def test_motion_energy_loss_charges_a_lagging_copy_not_where_the_change_is():
    """The pulse as a loss: zero for the truth and for any stack whose every step changes the frame
    as much as the truth's step (wherever in the frame); positive for a copy that holds inside the
    latent and jumps at its boundary, though it ends where the truth ends."""
    from train.losses import motion_energy_loss, temporal_difference_loss

    g = torch.Generator().manual_seed(0)
    steps = torch.rand(2, 4, 3, 8, 8, generator=g) * 0.1
    real = torch.cat([torch.zeros(2, 1, 3, 8, 8), steps.cumsum(1)], 1)              # (2, 5, 3, 8, 8)
    assert motion_energy_loss(real, real) == 0
    flipped = torch.cat([torch.zeros(2, 1, 3, 8, 8), steps.flip(-1).cumsum(1)], 1)   # same change, elsewhere
    assert motion_energy_loss(flipped, real) < 1e-6 < temporal_difference_loss(flipped, real)
    lagging = real.clone()
    lagging[:, 2:4] = real[:, 1:2]                                                   # holds, then jumps to frame 4
    assert motion_energy_loss(lagging, real) > 0.5
