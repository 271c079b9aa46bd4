"Glow outside a notebook: the benchmark script's dry run (both training loops) and its JSON."
import json, os, subprocess, sys
from pathlib import Path
import pytest

from _util import ROOT, MNIST

@pytest.mark.skipif(MNIST is None, reason='mnist.npz not available')
def test_benchmark_dry_run():
    cmd = [sys.executable, str(ROOT/'benchmarks'/'glow.py'), '--steps', '3', '--threads', '1', '--test-n', '16',
           '--samples', '8', '--baseline', '--data', str(MNIST)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout[r.stdout.index('{'):])
    from deepgen.core import n_params
    from deepgen.glow import glow_preset
    assert res['params'] == n_params(glow_preset('mnist'))  # the benchmark configuration: K=8, L=3, width 128
    assert res['steps'] == 3 and res['test_images'] == 16 and res['path'] == 'learner'
    assert res['img_per_s']['1'] > 0 and res['baseline_img_per_s']['1'] > 0
    assert 0 < res['test_bpd'] < 10 and res['peak_mem_mib'] > 0
    for t in ('0.7', '1.0'):
        s = res['samples'][t]
        assert s['n'] == 8 and 0 <= s['bad_frac'] <= 1 and s['bad_frac'] == (s['non_finite'] + s['out_of_range']) / 8

def test_benchmark_missing_data(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'glow.py'), '--steps', '2', '--data', str(tmp_path/'none.npz')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and '--data' in r.stderr

def test_samples_are_finite_after_short_training():
    "Issue 12: a Glow trained briefly on 8x8 digits samples only finite images at T = 0.5, 0.7 and 1.0 (and would warn otherwise)."
    import warnings, torch
    from fastai.torch_core import set_seed
    from deepgen.data import image_dls
    from deepgen.glow_learner import glow_learner
    set_seed(0)
    learn = glow_learner(image_dls('digits', bs=64, n_bits=4, num_workers=0), n_levels=2, n_steps=4, hidden=64, lr=1e-2, sample_every=None)
    with learn.no_bar(), learn.no_logging(): learn.fit(4)
    m = learn.model.eval()
    for t in (0.5, 0.7, 1.0):
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # `sample` warns when a sample is not finite
            x = m.sample(100, temp=t, as_image=False)
        assert torch.isfinite(x).all(), t

def test_sample_warns_on_non_finite():
    "`sample` says how many samples overflowed instead of passing NaN on silently."
    import pytest, torch
    from deepgen.glow import Glow
    g = Glow(in_ch=1, n_levels=2, n_steps=1, hidden=8, img_size=8)
    with torch.no_grad(): g.levels[0][0].actnorm.logs.fill_(-1e4)  # the inverse divides by exp(-1e4): overflow
    with pytest.warns(UserWarning, match='4 of 4 Glow samples'): g.sample(4, temp=1.)
