"""Weight interpolation (train/soup.py): the ends are the two models, the middle their mean."""
import pytest
import torch

from model.config import replace
from model.dit import PRESETS, VideoDiT
from model.runtime import STORAGE_DTYPE
from train.soup import interpolate, main


def _pair():
    torch.manual_seed(0)
    a = VideoDiT(replace(PRESETS["tiny"], control="pose"))
    b = VideoDiT(replace(PRESETS["tiny"], control="pose"))
    with torch.no_grad():
        for p in b.parameters():
            p.add_(torch.randn_like(p))          # adaLN-Zero starts some weights at zero: make B differ everywhere
    return a, b


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_interpolate_weights(alpha):
    a, b = _pair()
    m = interpolate(a, b, alpha)
    sa, sb, sm = a.state_dict(), b.state_dict(), m.state_dict()
    assert sm.keys() == sa.keys()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(sm[k], (1 - alpha) * sa[k] + alpha * sb[k])
    if alpha in (0.0, 1.0):                       # the ends are the models themselves, bit for bit
        end = (a if alpha == 0.0 else b).state_dict()
        assert all(torch.equal(sm[k], end[k]) for k in sm)


def test_interpolate_refuses_other_configs_and_alphas():
    a, _ = _pair()
    c = VideoDiT(replace(PRESETS["tiny"], control="camera"))
    with pytest.raises(ValueError, match="control"):
        interpolate(a, c, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        interpolate(a, a, 1.5)


def test_cli_writes_loadable_bf16(tmp_path):
    a, b = _pair()
    a.save_pretrained(tmp_path / "a")
    b.save_pretrained(tmp_path / "b")
    main(["--a", str(tmp_path / "a"), "--b", str(tmp_path / "b"), "--alpha", "0.5", "--out", str(tmp_path / "m")])
    m = VideoDiT.from_pretrained(tmp_path / "m")
    k = next(k for k, v in m.state_dict().items() if v.is_floating_point() and v.dim() == 2)
    want = (0.5 * a.state_dict()[k] + 0.5 * b.state_dict()[k]).to(STORAGE_DTYPE).float()
    torch.testing.assert_close(m.state_dict()[k], want)
