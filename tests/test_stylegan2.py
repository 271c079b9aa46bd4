"StyleGAN2 outside a notebook: the benchmark script's dry run and its JSON, its error for missing data, and its plain PyTorch path against the Learner's."
import json, os, subprocess, sys
from pathlib import Path
import pytest

from _util import ROOT, MNIST, run_python

@pytest.mark.skipif(MNIST is None, reason='mnist.npz not available')
def test_benchmark_dry_run():
    cmd = [sys.executable, str(ROOT/'benchmarks'/'stylegan2.py'), '--steps', '2', '--warmup', '1', '--repeats', '1',
           '--threads', '1', '--skip', 'quality', '--data', str(MNIST)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'}, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout[r.stdout.index('{'):])
    assert (res['params_G'], res['params_D']) == (1_049_291, 1_153_345)
    assert res['throughput'][0]['threads'] == 1 and res['throughput'][0]['img_per_sec'] > 0
    assert res['throughput'][0]['peak_mem_mib'] > 0
    cmp = res['compare']
    assert set(cmp['variants']) == {'lazy, non-grouped', 'every step', 'grouped'}
    assert cmp['lazy_speedup_over_every_step'] > 0 and cmp['non_grouped_speedup_over_grouped'] > 0

def test_benchmark_missing_data(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'stylegan2.py'), '--steps', '2', '--data', str(tmp_path/'none.npz')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0 and '--data' in r.stderr

def test_plain_step_is_the_learners_step():
    "Where fastai is missing the benchmark times `StyleGAN2Step`: it does the work of the Learner's step, phase by phase."
    out = {}
    for path in ('plain', 'learner'):
        r = run_python([ROOT/'benchmarks'/'stylegan2.py', '--speed', '--device', 'cpu', '--steps', '2', '--bs', '4', '--path', path], timeout=900)
        out[path] = json.loads(r.stdout)
    p, l = out['plain'], out['learner']
    assert (p['path'], l['path']) == ('plain', 'learner')
    assert set(p['flops_per_phase']) == set(l['flops_per_phase']) == {'D', 'D_reg', 'G', 'G_reg'}
    for k in p['flops_per_phase']:   # (style mixing, drawn at random, adds a pass of the small mapping network)
        assert p['flops_per_phase'][k] == pytest.approx(l['flops_per_phase'][k], rel=1e-3), k
    assert p['phase_every'] == l['phase_every'] == {'D_reg': 16, 'G_reg': 4}
    assert p['params'] == l['params'] and p['img_per_sec'] > 0 and p['peak_mem_mib'] > 0
