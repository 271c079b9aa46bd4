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
