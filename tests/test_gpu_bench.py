"benchmarks/gpu.sh: its CPU dry run, and a benchmark on a machine that has only torch, torchvision and numpy."
import importlib.util, json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'PYTHON': sys.executable}

def test_gpu_sh_dry_run():
    r = subprocess.run(['bash', str(ROOT/'benchmarks'/'gpu.sh'), '--device', 'cpu', '--steps', '2'],
                       capture_output=True, text=True, env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(r.stdout)
    assert sorted((o['benchmark'], o['config']) for o in runs) == sorted(
        (m, c) for m in ('glow', 'nvae', 'stylegan2') for c in ('design', 'paper'))
    for o in runs:
        assert 'error' not in o, o
        assert o['img_per_sec'] > 0 and o['flops_per_step'] > 0 and o['timed_steps'] == 2, o
        assert o['achieved_tflops'] is not None and o['peak_mem_mib'] > 0 and o['frac_of_peak'] is None  # no peak on a CPU
        assert o['options'] == dict(amp='fp32', channels_last=True, compile=False, fused=False)
        assert o['dry_run'] and (o['batch'] == 2) == (o['config'] == 'paper')
    by = {(o['benchmark'], o['config']): o for o in runs}
    assert by['glow', 'paper']['params'] > 40_000_000            # the paper's CIFAR-10 Glow at full size, batch 2
    assert 'REDUCED' in by['stylegan2', 'paper']['config_desc'] and by['stylegan2', 'paper']['image'] == '3x16x16'
    assert set(by['stylegan2', 'design']['flops_per_phase']) >= {'D', 'D_reg', 'G', 'G_reg'}
    sg = by['stylegan2', 'design']
    p = sg['flops_per_phase']     # R1 every 16 steps and path length every 4, amortised
    assert sg['flops_per_step'] == pytest.approx(p['D'] + p['G'] + p['D_reg'] / 16 + p['G_reg'] / 4, rel=1e-6)

# Makes the listed packages look uninstalled: every import finder is wrapped to find nothing under those names.
BLOCKER = '''
import sys
BLOCKED = {'fastai', 'fastcore', 'pandas', 'matplotlib', 'sklearn', 'scipy', 'torchmetrics', 'accelerate'}
class _Hide:
    def __init__(self, f): self.f = f
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED: return None
        fs = getattr(self.f, 'find_spec', None)
        return fs(name, path, target) if fs else None
    def __getattr__(self, a): return getattr(self.f, a)
sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
'''

def test_bare_machine(tmp_path):
    (tmp_path/'sitecustomize.py').write_text(textwrap.dedent(BLOCKER))
    env = {**ENV, 'PYTHONPATH': os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')])}
    for pkg in ('fastai', 'fastcore', 'pandas', 'matplotlib', 'sklearn', 'scipy', 'torchmetrics', 'accelerate'):
        r = subprocess.run([sys.executable, '-c', f'import {pkg}'], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode != 0 and 'ModuleNotFoundError' in r.stderr, pkg
    # no --speed: without fastai the benchmark falls back to timing the step in a plain PyTorch loop, and says so
    r = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'glow.py'), '--device', 'cpu', '--steps', '2', '--threads', '1'],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    o = json.loads(r.stdout)
    assert o['path'] == 'plain' and 'fastai is not installed' in o['path_note'] and 'skipped' in o
    assert o['img_per_sec'] > 0 and o['flops_per_step'] > 0 and o['params'] > 0
    # the same FLOPs as the Learner's step counts where fastai is installed (the same model, loss and options)
    r2 = subprocess.run([sys.executable, str(ROOT/'benchmarks'/'glow.py'), '--speed', '--device', 'cpu', '--steps', '2', '--threads', '1'],
                        capture_output=True, text=True, env=ENV, timeout=600)
    assert r2.returncode == 0, r2.stderr[-3000:]
    o2 = json.loads(r2.stdout)
    assert o2['path'] == ('learner' if importlib.util.find_spec('fastai') else 'plain')
    assert o2['flops_per_step'] == o['flops_per_step'] and o2['params'] == o['params']
