"""Attention with the generator's frame mask, computed from per-token frame positions.

A query token of stream frame ``qf`` sees a key token of frame ``kf`` when the key exists
(``kf >= 0``; -1 marks an empty cache slot) and either ``kf == 0`` (the first frame, always
attended) or, causal: ``1 <= kf <= qf`` and ``kf >= qf - window``; bidirectional: ``kf >= 1``
and ``qf >= 1``. The mask is never materialised by the Triton kernel, so long sequences cost
no O(N^2) memory.

Layout (Triton tutorial 06 style): the reference, then the forward and backward kernels, the
autograd Function, and the dispatcher ``attention``.
"""
from __future__ import annotations

import math

import torch

from model.kernels.dispatch import choose, interpreter


# ----------------------------------------------------------------------------- reference
def frame_visibility(q_frames: torch.Tensor, k_frames: torch.Tensor, window: int, causal: bool) -> torch.Tensor:
    """(Nq,), (Nk,) integer frame positions -> (Nq, Nk) bool, True = visible."""
    q, k = q_frames[:, None], k_frames[None, :]
    if causal:
        rest = (k >= 1) & (k <= q) & (k >= q - window)
    else:
        rest = (k >= 1) & (q >= 1)
    return (k >= 0) & ((k == 0) | rest)


def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_frames: torch.Tensor,
                        k_frames: torch.Tensor, window: int, causal: bool) -> torch.Tensor:
    """q (B, H, Nq, E), k, v (B, H, Nk, E); q_frames (Nq,), k_frames (Nk,) -> (B, H, Nq, E).

    Plain math in the inputs' dtype, also under autocast (the softmax stays in bf16 when the
    inputs are bf16): on this CPU it is about twice as fast as SDPA's masked path at our sizes
    (a few hundred keys), forward and backward. Queries that see no key get zeros.
    """
    mask = frame_visibility(q_frames, k_frames, window, causal)
    bias = torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(~mask, float("-inf"))
    with torch.autocast(device_type=q.device.type, enabled=False):
        s = torch.baddbmm(bias.expand(q.shape[0] * q.shape[1], *mask.shape),
                          q.flatten(0, 1) * (1.0 / math.sqrt(q.shape[-1])), k.flatten(0, 1).transpose(-1, -2))
        p = torch.softmax(s, -1)
        if not bool(mask.any(-1).all()):
            p = torch.nan_to_num(p, nan=0.0)
        return (p @ v.flatten(0, 1)).view(q.shape[:-1] + (v.shape[-1],))


# ----------------------------------------------------------------------------- Triton
try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - CPU-only installs without triton use the reference
    triton = None

if triton is not None:

    @triton.jit
    def _dot(a, b, F32: tl.constexpr):
        # Triton's CPU interpreter computes bf16 dots wrongly: there (F32) both sides go to fp32 first;
        # on a GPU the inputs' dtype reaches the tensor cores
        if F32:
            return tl.dot(a.to(tl.float32), b.to(tl.float32))
        return tl.dot(a, b)

    @triton.jit
    def _visible(qf, kf, window, CAUSAL: tl.constexpr):
        # qf (M, 1), kf (1, N) int32 frame positions
        if CAUSAL:
            rest = (kf >= 1) & (kf <= qf) & (kf >= qf - window)
        else:
            rest = (kf >= 1) & (qf >= 1)
        return (kf >= 0) & ((kf == 0) | rest)

    @triton.jit
    def _attn_fwd(Q, K, V, QF, KF, O, LSE,      # Q, O: (BH, Nq, E); K, V: (BH, Nk, E); LSE: (BH, Nq) fp32
                  Nq, Nk, window, sm_scale,      # runtime sizes, sliding window, 1/sqrt(E)
                  CAUSAL: tl.constexpr, E: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                  DOT_F32: tl.constexpr):
        pid_m, bh = tl.program_id(0), tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_e = tl.arange(0, E)
        q_ptrs = Q + bh * Nq * E + offs_m[:, None] * E + offs_e[None, :]
        q = tl.load(q_ptrs, mask=offs_m[:, None] < Nq, other=0.0)
        qf = tl.load(QF + offs_m, mask=offs_m < Nq, other=0)
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, E], tl.float32)
        for start in range(0, Nk, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            kf = tl.load(KF + offs_n, mask=offs_n < Nk, other=-1)
            kv_off = bh * Nk * E + offs_n[:, None] * E + offs_e[None, :]
            k = tl.load(K + kv_off, mask=offs_n[:, None] < Nk, other=0.0)
            v = tl.load(V + kv_off, mask=offs_n[:, None] < Nk, other=0.0)
            s = _dot(q, tl.trans(k), DOT_F32) * sm_scale
            vis = _visible(qf[:, None], kf[None, :], window, CAUSAL)
            s = tl.where(vis, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            p = tl.exp(s - m_safe[:, None])
            alpha = tl.exp(m_i - m_safe)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + _dot(p.to(v.dtype), v, DOT_F32)
            m_i = m_new
        l_safe = tl.where(l_i > 0.0, l_i, 1.0)
        out = acc / l_safe[:, None]
        lse = tl.where(l_i > 0.0, m_i + tl.log(l_safe), float("inf"))  # inf: a row that saw nothing
        tl.store(O + bh * Nq * E + offs_m[:, None] * E + offs_e[None, :], out.to(O.dtype.element_ty),
                 mask=offs_m[:, None] < Nq)
        tl.store(LSE + bh * Nq + offs_m, lse, mask=offs_m < Nq)

    @triton.jit
    def _attn_bwd_dkdv(Q, K, V, QF, KF, DO, LSE, DELTA, DK, DV,   # DELTA: rowsum(dO * O), (BH, Nq) fp32
                       Nq, Nk, window, sm_scale,
                       CAUSAL: tl.constexpr, E: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                       DOT_F32: tl.constexpr):
        pid_n, bh = tl.program_id(0), tl.program_id(1)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        offs_e = tl.arange(0, E)
        kv_off = bh * Nk * E + offs_n[:, None] * E + offs_e[None, :]
        k = tl.load(K + kv_off, mask=offs_n[:, None] < Nk, other=0.0)
        v = tl.load(V + kv_off, mask=offs_n[:, None] < Nk, other=0.0)
        kf = tl.load(KF + offs_n, mask=offs_n < Nk, other=-1)
        dk = tl.zeros([BLOCK_N, E], tl.float32)
        dv = tl.zeros([BLOCK_N, E], tl.float32)
        for start in range(0, Nq, BLOCK_M):
            offs_m = start + tl.arange(0, BLOCK_M)
            q_off = bh * Nq * E + offs_m[:, None] * E + offs_e[None, :]
            q = tl.load(Q + q_off, mask=offs_m[:, None] < Nq, other=0.0)
            do = tl.load(DO + q_off, mask=offs_m[:, None] < Nq, other=0.0)
            qf = tl.load(QF + offs_m, mask=offs_m < Nq, other=0)
            lse = tl.load(LSE + bh * Nq + offs_m, mask=offs_m < Nq, other=float("inf"))
            delta = tl.load(DELTA + bh * Nq + offs_m, mask=offs_m < Nq, other=0.0)
            s = _dot(q, tl.trans(k), DOT_F32) * sm_scale                      # (M, N)
            vis = _visible(qf[:, None], kf[None, :], window, CAUSAL) & (offs_m[:, None] < Nq)
            p = tl.where(vis, tl.exp(s - lse[:, None]), 0.0)
            dv += _dot(tl.trans(p).to(do.dtype), do, DOT_F32)
            dp = _dot(do, tl.trans(v), DOT_F32)
            ds = p * (dp - delta[:, None]) * sm_scale
            dk += _dot(tl.trans(ds).to(q.dtype), q, DOT_F32)
        tl.store(DK + kv_off, dk.to(DK.dtype.element_ty), mask=offs_n[:, None] < Nk)
        tl.store(DV + kv_off, dv.to(DV.dtype.element_ty), mask=offs_n[:, None] < Nk)

    @triton.jit
    def _attn_bwd_dq(Q, K, V, QF, KF, DO, LSE, DELTA, DQ,
                     Nq, Nk, window, sm_scale,
                     CAUSAL: tl.constexpr, E: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                     DOT_F32: tl.constexpr):
        pid_m, bh = tl.program_id(0), tl.program_id(1)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_e = tl.arange(0, E)
        q_off = bh * Nq * E + offs_m[:, None] * E + offs_e[None, :]
        q = tl.load(Q + q_off, mask=offs_m[:, None] < Nq, other=0.0)
        do = tl.load(DO + q_off, mask=offs_m[:, None] < Nq, other=0.0)
        qf = tl.load(QF + offs_m, mask=offs_m < Nq, other=0)
        lse = tl.load(LSE + bh * Nq + offs_m, mask=offs_m < Nq, other=float("inf"))
        delta = tl.load(DELTA + bh * Nq + offs_m, mask=offs_m < Nq, other=0.0)
        dq = tl.zeros([BLOCK_M, E], tl.float32)
        for start in range(0, Nk, BLOCK_N):
            offs_n = start + tl.arange(0, BLOCK_N)
            kv_off = bh * Nk * E + offs_n[:, None] * E + offs_e[None, :]
            k = tl.load(K + kv_off, mask=offs_n[:, None] < Nk, other=0.0)
            v = tl.load(V + kv_off, mask=offs_n[:, None] < Nk, other=0.0)
            kf = tl.load(KF + offs_n, mask=offs_n < Nk, other=-1)
            s = _dot(q, tl.trans(k), DOT_F32) * sm_scale
            vis = _visible(qf[:, None], kf[None, :], window, CAUSAL)
            p = tl.where(vis, tl.exp(s - lse[:, None]), 0.0)
            dp = _dot(do, tl.trans(v), DOT_F32)
            ds = p * (dp - delta[:, None]) * sm_scale
            dq += _dot(ds.to(k.dtype), k, DOT_F32)
        tl.store(DQ + q_off, dq.to(DQ.dtype.element_ty), mask=offs_m[:, None] < Nq)


def _blocks(E: int, device: torch.device) -> tuple[int, int]:
    if E not in (16, 32, 64, 128):
        raise ValueError(f"the Triton attention supports head dims 16, 32, 64, 128, got {E}")
    return (16, 16) if device.type != "cuda" else (64, 64)


class _TritonAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, q_frames, k_frames, window, causal):
        B, H, Nq, E = q.shape
        Nk = k.shape[2]
        BM, BN = _blocks(E, q.device)
        q3, k3, v3 = (t.reshape(B * H, -1, E).contiguous() for t in (q, k, v))
        qf = q_frames.to(device=q.device, dtype=torch.int32).contiguous()
        kf = k_frames.to(device=q.device, dtype=torch.int32).contiguous()
        o = torch.empty_like(q3)
        lse = torch.empty((B * H, Nq), device=q.device, dtype=torch.float32)
        scale = 1.0 / math.sqrt(E)
        _attn_fwd[(triton.cdiv(Nq, BM), B * H)](q3, k3, v3, qf, kf, o, lse, Nq, Nk, int(window), scale,
                                                CAUSAL=bool(causal), E=E, BLOCK_M=BM, BLOCK_N=BN,
                                                DOT_F32=interpreter())
        ctx.save_for_backward(q3, k3, v3, qf, kf, o, lse)
        ctx.meta = (B, H, Nq, Nk, E, int(window), bool(causal), scale, BM, BN)
        return o.view(B, H, Nq, E)

    @staticmethod
    def backward(ctx, do):
        q3, k3, v3, qf, kf, o, lse = ctx.saved_tensors
        B, H, Nq, Nk, E, window, causal, scale, BM, BN = ctx.meta
        do3 = do.reshape(B * H, Nq, E).contiguous()
        delta = (do3.float() * o.float()).sum(-1).contiguous()
        dq, dk, dv = torch.empty_like(q3), torch.empty_like(k3), torch.empty_like(v3)
        _attn_bwd_dkdv[(triton.cdiv(Nk, BN), B * H)](q3, k3, v3, qf, kf, do3, lse, delta, dk, dv, Nq, Nk, window,
                                                     scale, CAUSAL=causal, E=E, BLOCK_M=BM, BLOCK_N=BN,
                                                     DOT_F32=interpreter())
        _attn_bwd_dq[(triton.cdiv(Nq, BM), B * H)](q3, k3, v3, qf, kf, do3, lse, delta, dq, Nq, Nk, window,
                                                   scale, CAUSAL=causal, E=E, BLOCK_M=BM, BLOCK_N=BN,
                                                   DOT_F32=interpreter())
        return (dq.view(B, H, Nq, E), dk.view(B, H, Nk, E), dv.view(B, H, Nk, E), None, None, None, None)


def attention_triton(q, k, v, q_frames, k_frames, window, causal):
    if triton is None:
        raise RuntimeError("triton is not installed")
    return _TritonAttention.apply(q, k, v, q_frames, k_frames, window, causal)


# ----------------------------------------------------------------------------- dispatcher
def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_frames: torch.Tensor, k_frames: torch.Tensor,
              window: int, causal: bool) -> torch.Tensor:
    """Frame-masked attention; Triton on CUDA, the PyTorch reference elsewhere (see module doc)."""
    if choose(q) == "triton":
        return attention_triton(q, k, v, q_frames, k_frames, window, causal)
    return attention_reference(q, k, v, q_frames, k_frames, window, causal)
