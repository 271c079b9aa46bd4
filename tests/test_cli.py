"The `deepgen` console script end to end, as a user runs it: train, sample, resume, and bad arguments."
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest
from _util import free_port

EXE = shutil.which('deepgen') or pytest.skip('the deepgen console script is not installed (pip install -e .)', allow_module_level=True)
ENV = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONWARNINGS': 'ignore'}

def deepgen(*args, cwd=None):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV, timeout=600)

@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('run')/'glow'
    r = deepgen('train', 'glow', '--epochs', 1, '--bs', 16, '--max-items', 64, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def test_train_writes_the_run(run_dir):
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ['checkpoint.pth', 'history.csv', 'model.pkl', 'samples', 'summary.json']
    s = json.loads((run_dir/'summary.json').read_text())
    assert s['model'] == 'glow' and s['img_shape'] == [1, 8, 8] and s['params'] > 0
    assert list((run_dir/'samples').glob('*.png'))
    hist = (run_dir/'history.csv').read_text().splitlines()
    assert 'img_per_sec' in hist[0] and len(hist) == 2

def test_sample(run_dir, tmp_path):
    png = tmp_path/'s.png'
    r = deepgen('sample', run_dir/'model.pkl', '--n', 9, '--temp', 0.5, '--out', png)
    assert r.returncode == 0, r.stderr[-3000:]
    from PIL import Image
    w, h = Image.open(png).size
    assert w == h == 3*8 + 4  # 3x3 grid of 8x8 digits with 1-pixel padding

def test_resume_continues(run_dir, tmp_path):
    out = tmp_path/'resumed'
    shutil.copytree(run_dir, out)
    r = deepgen('train', 'glow', '--epochs', 2, '--bs', 16, '--max-items', 64, '--out', out, '--resume')
    assert r.returncode == 0, r.stderr[-3000:]
    rows = (out/'history.csv').read_text().splitlines()
    assert [r.split(',')[0] for r in rows] == ['epoch', '0', '1']  # one header, epoch 0 from the first run, then the resumed epoch 1
    assert json.loads((out/'summary.json').read_text())['epochs'] == 2

@pytest.mark.parametrize('args,msg', [
    (['train', 'glow', '--data', 'no-such-data'], 'neither a dataset name'),
    (['train', 'glow', '--bs', '100000'], 'larger than the training split'),
    (['train', 'glow', '--n-bits', '12'], 'n_bits'),
    (['train', 'vqgan'], 'invalid choice'),
    (['sample', '/no/such/model.pkl'], 'No model file'),
    (['frobnicate'], 'invalid choice'),
    (['compare', '--budget', '0'], 'positive number of seconds'),
    (['compare', '--data', 'no-such-data', '--budget', '60'], 'neither a dataset name'),
    (['compare', '--budget', '10'], 'at least 30 seconds'),
])
def test_bad_arguments(args, msg):
    r = deepgen(*args)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert msg in r.stderr, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr

def test_corrupt_model_file(tmp_path):
    f = tmp_path/'model.pkl'; f.write_bytes(b'\x80\x04garbage')
    r = deepgen('sample', f)
    assert r.returncode == 2 and 'not a Learner exported by deepgen train' in r.stderr, r.stderr[-2000:]

def test_help_explains_options():
    r = deepgen('train', '--help')
    assert r.returncode == 0
    for opt in ('--data', '--epochs', '--out', '--precision', '--resume', '--preset'): assert opt in r.stdout

LAUNCHERS = {'torchrun': lambda port: [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(port)],
             'accelerate': lambda port: [shutil.which('accelerate') or 'accelerate', 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
                                         '--mixed_precision', 'no', '--dynamo_backend', 'no', '--main_process_port', str(port)]}

@pytest.mark.parametrize('launcher,model', [('torchrun', 'glow'), ('torchrun', 'stylegan2'), ('accelerate', 'nvae')])
def test_train_under_launchers(launcher, model, tmp_path):
    "The README's multi-process commands, on two CPU processes (Gloo): one set of files, written by rank 0."
    if launcher == 'accelerate' and not shutil.which('accelerate'): pytest.skip("accelerate is not installed (deepgen's `distributed` extra)")
    out = tmp_path/model
    r = subprocess.run([*LAUNCHERS[launcher](free_port()), '-m', 'deepgen.cli', 'train', model, '--epochs', '1', '--bs', '8',
                        '--max-items', '64', '--out', str(out)], capture_output=True, text=True, env={**ENV, 'OMP_NUM_THREADS': '1'}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('"model"') == 2   # both processes trained and printed their summary
    assert sorted(p.name for p in out.iterdir()) == ['checkpoint.pth', 'history.csv', 'model.pkl', 'samples', 'summary.json']
    hist = (out/'history.csv').read_text().splitlines()
    assert len(hist) == 2 and float(hist[1].split(',')[hist[0].split(',').index('img_per_sec')]) > 0

def test_compare_end_to_end(tmp_path):
    "The README's main job on a small budget: `deepgen compare` on the digits writes the report with its eight comparisons, the images it shows and the JSON."
    out, budget = tmp_path/'report', 60
    r = deepgen('compare', '--budget', budget, '--quick', '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out/'results.json').read_text())
    assert res['budget_s'] == budget and res['budget_used_s'] > 0   # (how closely small budgets are kept is measured, not asserted: it depends on the machine's load)
    md = (out/'report.md').read_text()
    for i in range(1, 9): assert re.search(rf'^## {i}\. ', md, re.M), f'section {i} missing'
    imgs = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', md)
    assert len(imgs) >= 4 and all((out/f).exists() and (out/f).stat().st_size > 0 for f in imgs), imgs
