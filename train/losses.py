"""Loss functions of the recipe, each small, pure and cited (../shared/PAPER.md sections)."""
from __future__ import annotations

import torch
import torch.nn.functional as Fn


# ----------------------------------------------------------------------------- autoencoder
def _gauss_window(size: int = 7, sigma: float = 1.5, device=None, dtype=None) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return (g / g.sum()).to(dtype)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004, Gaussian window 7, sigma 1.5) of (N, C, H, W) images.

    Always fp32 (also under autocast): its variances cancel catastrophically in bf16.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _ssim_fp32(x.float(), y.float(), data_range)


def _ssim_fp32(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    C = x.shape[1]
    g = _gauss_window(device=x.device, dtype=x.dtype)
    kh = g.view(1, 1, -1, 1).expand(C, 1, -1, 1)
    kw = g.view(1, 1, 1, -1).expand(C, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return Fn.conv2d(Fn.conv2d(t, kh, groups=C), kw, groups=C)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor, ssim_weight: float = 0.2) -> torch.Tensor:
    """L1 + ssim_weight * (1 - SSIM) over (..., 3, H, W) frames in [-1, 1] (no perceptual net offline).

    The L1 term is taken in fp32 too.
    """
    a, b = x_hat.flatten(0, -4).float(), x.flatten(0, -4).float()
    return (a - b).abs().mean() + ssim_weight * (1.0 - ssim(a, b))


# ----------------------------------------------------------------------------- diffusion
def shift_t(t: torch.Tensor, s: float) -> torch.Tensor:
    """Timestep shift (App. B): shift(t, s) = s t / (1 + (s - 1) t)."""
    return s * t / (1.0 + (s - 1.0) * t)


def flow_interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Flow matching (App. B): x_t = (1 - t) x0 + t eps; t broadcasts from the left."""
    t = t.view(*t.shape, *([1] * (x0.dim() - t.dim())))
    return (1.0 - t) * x0 + t * eps


def v_loss_from_x0(x0_hat: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, t_min: float = 0.05) -> torch.Tensor:
    """MSE on v = eps - x0 (App. B) for a network that predicts x0.

    v_hat - v = (x0 - x0_hat) / t at the same x_t, so the v-space loss is the x0 error over t^2;
    t is floored at t_min so near-clean samples do not dominate (Li & He 2025, "Back to Basics").
    Shapes: x0 (B, F, ...), t (B, F) or (B,).
    """
    t = t.clamp_min(t_min)
    t = t.view(*t.shape, *([1] * (x0.dim() - t.dim())))
    return (((x0_hat.float() - x0.float()) / t) ** 2).mean()


# ----------------------------------------------------------------------------- adversarial
def relativistic_g_loss(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Generator loss of the relativistic pairing (App. B, R3GAN): softplus(-(D(fake) - D(real)))."""
    return Fn.softplus(-(d_fake - d_real)).mean()


def relativistic_d_loss(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Discriminator loss of the relativistic pairing (App. B, R3GAN): softplus(-(D(real) - D(fake)))."""
    return Fn.softplus(-(d_real - d_fake)).mean()


def mismatch_d_loss(d_mismatched: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Matching-aware discriminator term (GAN-CLS, Reed et al. 2016, "real image, wrong text" as a
    third kind of input), in the relativistic form: a real video must score above the same video
    under another clip's controls, softplus(-(D(x, c) - D(x, c'))). A discriminator that only
    judges realism is indifferent to it; one that checks the video against its controls (the pose
    it shows, the camera motion) is what teaches the generator to follow them. The mismatched
    pair takes the fake's place in the discriminator's relativistic loss."""
    return relativistic_d_loss(d_mismatched, d_real)


def approx_r_penalty(d_clean: torch.Tensor, d_perturbed: torch.Tensor) -> torch.Tensor:
    """Approximate R1/R2 (App. B, APT1): ||D(x) - D(x + N(0, sigma^2 I))||^2, mean over logits.

    Multiply by lambda (1000 in the paper); no double backward needed.
    """
    return ((d_clean.float() - d_perturbed.float()) ** 2).mean()


def exact_r_penalty(d_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Exact zero-centred gradient penalty (R3GAN): mean over samples of ||grad_x sum D(x)||^2.

    ``x`` must require grad and ``d_out`` be computed from it; uses double backward.
    """
    (g,) = torch.autograd.grad(d_out.sum(), x, create_graph=True)
    return g.float().pow(2).flatten(1).sum(1).mean()


# ----------------------------------------------------------------------------- adversarial decoder
def hinge_d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss (Lim & Ye 2017; the VQGAN decoder's, Esser et al. 2021):
    relu(1 - D(real)) + relu(1 + D(fake))."""
    return Fn.relu(1.0 - d_real.float()).mean() + Fn.relu(1.0 + d_fake.float()).mean()


def hinge_g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss: -D(fake)."""
    return -d_fake.float().mean()


def temporal_difference_loss(fake: torch.Tensor, real: torch.Tensor, boundary: int = 1) -> torch.Tensor:
    """L1 between the frame-to-frame changes of (B, F, 3, H, W) fake and real stacks (the motion
    anchor of video decoders: the change between consecutive frames should be the truth's, not the
    jump of two independent decodes). The first ``boundary`` steps (from the context frame across the
    latent boundary) count as much as all the steps inside the latent together."""
    d_fake = (fake[:, 1:] - fake[:, :-1]).float()
    d_real = (real[:, 1:] - real[:, :-1]).float()
    err = (d_fake - d_real).abs().flatten(2).mean(2)                      # (B, F - 1)
    return err[:, :boundary].mean() + err[:, boundary:].mean()


def motion_energy_loss(fake: torch.Tensor, real: torch.Tensor, floor: float = 0.02) -> torch.Tensor:
    """The pulse as a loss: per sample of (B, F, 3, H, W) stacks, the mean absolute change of each
    frame-to-frame step against the truth's, relative to the truth's mean change over the stack
    (plus ``floor``, about 2.5 grey levels, so that still stacks weigh no more than slow ones).
    Where the per-pixel L1 of the changes (``temporal_difference_loss``) is least when the decoder
    holds still wherever it is unsure, this only asks each step to move as much as the truth does,
    so a copy that lags inside a latent and jumps at its boundary pays for both."""
    m_fake = (fake[:, 1:] - fake[:, :-1]).float().abs().flatten(2).mean(2)   # (B, F - 1)
    m_real = (real[:, 1:] - real[:, :-1]).float().abs().flatten(2).mean(2)
    return ((m_fake - m_real).abs() / (m_real.mean(1, keepdim=True) + floor)).mean()


def gradient_difference_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Gradient difference loss (Mathieu et al. 2016, "Deep multi-scale video prediction beyond mean
    square error", eq. 5 with alpha = 1): L1 between the absolute horizontal and vertical pixel
    differences of fake and real images (..., H, W). An L1 loss alone is minimised by the blur of
    what is uncertain; this term charges for every edge the fake lacks or adds."""
    f, r = fake.float(), real.float()
    dx = ((f[..., :, 1:] - f[..., :, :-1]).abs() - (r[..., :, 1:] - r[..., :, :-1]).abs()).abs().mean()
    dy = ((f[..., 1:, :] - f[..., :-1, :]).abs() - (r[..., 1:, :] - r[..., :-1, :]).abs()).abs().mean()
    return dx + dy


def feature_matching_loss(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Feature matching (Wang et al. 2018, pix2pixHD eq. 4): the mean over the discriminator's
    levels of the L1 distance between its features of the fake and of the paired real input (the
    real side detached: it pulls the generator only)."""
    return torch.stack([(f.float() - r.detach().float()).abs().mean() for f, r in zip(fake, real)]).mean()


def adaptive_weight(rec: torch.Tensor, adv: torch.Tensor, last: torch.Tensor, max_weight: float = 1e4) -> torch.Tensor:
    """VQGAN's adaptive adversarial weight (Esser et al. 2021, eq. 7): ||grad_L rec|| / ||grad_L adv||
    at the generator's last layer ``last``, so the adversarial term pulls as hard as the
    reconstruction does whatever the discriminator's scale; detached, clamped to [0, max_weight]."""
    g_rec = torch.autograd.grad(rec, last, retain_graph=True)[0]
    g_adv = torch.autograd.grad(adv, last, retain_graph=True)[0]
    return (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(0.0, max_weight).detach()
