"StyleGAN2 outside a notebook: the benchmark script's dry run and its JSON, and its error for missing data."
import json, os, subprocess, sys
from pathlib import Path
import pytest

from _util import ROOT, MNIST

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
