"""benchmarks/gpu.sh: its CPU dry run, with fastai (each benchmark times its Learner's step) and in a Python where fastai,
fasttransform, matplotlib and torchvision cannot be imported (each times the same step in a plain PyTorch loop)."""
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'PYTHONWARNINGS': 'ignore', 'PYTHON': sys.executable}
MODELS, CONFIGS = ('glow', 'nvae', 'stylegan2'), ('small', 'paper')

# Makes the listed packages look uninstalled: every import finder is wrapped to find nothing under those names (so
# `import` fails and `importlib.util.find_spec` returns None, as on a machine without them).
BLOCKED = ('fastai', 'fasttransform', 'matplotlib', 'torchvision', 'pandas', 'sklearn', 'scipy', 'torchmetrics', 'accelerate')
BLOCKER = f'''
import sys
BLOCKED = {set(BLOCKED)!r}
class _Hide:
    def __init__(self, f): self.f = f
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in BLOCKED: return None
        fs = getattr(self.f, 'find_spec', None)
        return fs(name, path, target) if fs else None
    def __getattr__(self, a): return getattr(self.f, a)
sys.meta_path[:] = [_Hide(f) for f in sys.meta_path]
'''

def bare_env(tmp_path)->dict:
    "An environment whose Pythons cannot import the `BLOCKED` packages (a `sitecustomize` installs the finder)."
    (tmp_path/'sitecustomize.py').write_text(textwrap.dedent(BLOCKER))
    return {**ENV, 'PYTHONPATH': os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get('PYTHONPATH', '')])}

def dry_run(env)->list:
    r = subprocess.run(['bash', str(ROOT/'benchmarks'/'gpu.sh'), '--device', 'cpu', '--steps', '2'], capture_output=True, text=True, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    "The dry run's results with fastai (when installed) and without it, by (model, configuration)."
    env = bare_env(tmp_path_factory.mktemp('bare'))
    for pkg in BLOCKED:
        r = subprocess.run([sys.executable, '-c', f'import {pkg}'], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode != 0 and 'ModuleNotFoundError' in r.stderr, pkg
    return {k: {(o['benchmark'], o['config']): o for o in dry_run(e)} for k, e in (('learner', ENV), ('plain', env))}

@pytest.mark.parametrize('path', ['learner', 'plain'])
def test_gpu_sh_dry_run(runs, path):
    by = runs[path]
    assert sorted(by) == sorted((m, c) for m in MODELS for c in CONFIGS)
    for o in by.values():
        assert 'error' not in o, o
        assert o['img_per_sec'] > 0 and o['flops_per_step'] > 0 and o['timed_steps'] == 2, o
        assert o['achieved_tflops'] is not None and o['peak_mem_mib'] > 0 and o['frac_of_peak'] is None  # no peak on a CPU
        assert o['options'] == dict(amp='fp32', channels_last=True, compile=False, fused=False)
        assert o['dry_run'] and (o['batch'] == 2) == (o['config'] == 'paper')
    assert by['glow', 'paper']['params'] > 40_000_000            # the paper's CIFAR-10 Glow at full size, batch 2
    assert 'REDUCED' in by['stylegan2', 'paper']['config_desc'] and by['stylegan2', 'paper']['image'] == '3x16x16'
    for o in by.values(): assert '.md' not in o['config_desc'], o['config_desc']   # described here, not by a file elsewhere
    sg = by['stylegan2', 'small']
    assert set(sg['flops_per_phase']) >= {'D', 'D_reg', 'G', 'G_reg'}
    p = sg['flops_per_phase']     # R1 every 16 steps and path length every 4, amortised
    assert sg['flops_per_step'] == pytest.approx(p['D'] + p['G'] + p['D_reg'] / 16 + p['G_reg'] / 4, rel=1e-6)

def test_plain_path_says_why(runs):
    for o in runs['plain'].values():
        assert o['path'] == 'plain' and 'fastai is not installed' in o['path_note'], o['path_note']

def test_same_step_on_both_paths(runs):
    "Without fastai the benchmarks time the same step as the Learner's: the same model and the same FLOPs."
    if not all(o['path'] == 'learner' for o in runs['learner'].values()): pytest.skip('fastai is not installed here: only the plain path runs')
    for k, o in runs['learner'].items():
        q = runs['plain'][k]
        assert q['params'] == o['params'], k
        # StyleGAN2 mixes styles in 90% of its steps, at random: a mixed step runs the mapping network twice (0.05% of
        # config F's step), so the two paths' FLOP counts of one step agree to that
        assert q['flops_per_step'] == pytest.approx(o['flops_per_step'], rel=1e-3 if k[0] == 'stylegan2' else 1e-9), k
