"The `deepgen` console script end to end, as a user runs it: train, sample, resume, and what a careless or hostile user gives it."
import json, os, pickle, re, shutil, subprocess, sys
from contextlib import redirect_stdout, redirect_stderr
from io import StringIO
from pathlib import Path
import numpy as np
import pytest
import torch
from _util import free_port

EXE = shutil.which('deepgen') or pytest.skip('the deepgen console script is not installed (pip install -e .)', allow_module_level=True)
ENV = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONWARNINGS': 'ignore', 'OMP_NUM_THREADS': '1'}
TINY = ['--bs', 16, '--max-items', 64]   # a few seconds of training on the digits

def deepgen(*args, cwd=None, env=None):
    "Run the installed `deepgen` command, as a user does."
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, cwd=cwd, env={**ENV, **(env or {})}, timeout=600)

def cli(*args)->tuple:
    "Run `deepgen.cli.main` in this process, with one thread as `deepgen` runs under `ENV`: (exit status, stdout, stderr)."
    from deepgen.cli import main
    out, err, n = StringIO(), StringIO(), torch.get_num_threads()
    torch.set_num_threads(1)   # as OMP_NUM_THREADS=1 in the processes `deepgen` starts: another thread count sums in another order
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try: main([str(a) for a in args]); code = 0
            except SystemExit as e: code = e.code
    finally: torch.set_num_threads(n)
    return code, out.getvalue(), err.getvalue()

RUN_FILES = ['checkpoint.pth', 'history.csv', 'model.json', 'model.pkl', 'model.pth', 'samples', 'summary.json']

def history_epochs(run): return [int(r.split(',')[0]) for r in (Path(run)/'history.csv').read_text().splitlines()[1:]]
def ckpt_weights(run): return torch.load(Path(run)/'checkpoint.pth', weights_only=True)['model']

@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('run')/'glow'
    r = deepgen('train', 'glow', '--epochs', 1, *TINY, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def test_train_writes_the_run(run_dir):
    assert sorted(p.name for p in run_dir.iterdir()) == RUN_FILES
    s = json.loads((run_dir/'summary.json').read_text())
    assert s['model'] == 'glow' and s['img_shape'] == [1, 8, 8] and s['params'] > 0 and s['status'] == 'finished'
    assert list((run_dir/'samples').glob('*.png'))
    hist = (run_dir/'history.csv').read_text().splitlines()
    assert 'img_per_sec' in hist[0] and len(hist) == 2

def test_sample(run_dir, tmp_path):
    png = tmp_path/'s.png'
    r = deepgen('sample', run_dir, '--n', 9, '--temp', 0.5, '--out', png)
    assert r.returncode == 0, r.stderr[-3000:]
    from PIL import Image
    w, h = Image.open(png).size
    assert w == h == 3*8 + 4  # 3x3 grid of 8x8 digits with 1-pixel padding

def test_resume_continues(run_dir, tmp_path):
    "A longer --epochs on resume trains on, and says that the schedule is not the one of a straight run of that length."
    out = tmp_path/'resumed'
    shutil.copytree(run_dir, out)
    r = deepgen('train', 'glow', '--epochs', 2, *TINY, '--out', out, '--resume')
    assert r.returncode == 0, r.stderr[-3000:]
    assert history_epochs(out) == [0, 1]   # one header, epoch 0 from the first run, then the resumed epoch 1
    s = json.loads((out/'summary.json').read_text())
    assert s['epochs'] == 2 and s['resumed']['from_epoch'] == 1 and s['resumed']['planned_epochs'] == 1
    assert 'not what a straight 2-epoch run gives' in r.stderr and s['resumed']['note'] in r.stderr

# --- hostile input: one table, run by one test. A new command or option gets its rows here. ---
# (arguments, expected exit status, words the message must hold); {names} are filled in by the `places` fixture
HOSTILE = [
    # what the parser sees
    (['frobnicate'], 2, 'invalid choice'),
    (['train', 'vqgan'], 2, 'invalid choice'),
    (['train', 'glow', '--epochs', '0'], 2, 'argument --epochs: must be at least 1, got 0'),
    (['train', 'glow', '--epochs', '-3'], 2, 'argument --epochs: must be at least 1, got -3'),
    (['train', 'glow', '--max-items', '0'], 2, 'argument --max-items: must be at least 1, got 0'),
    (['train', 'glow', '--max-items', '-5'], 2, 'argument --max-items: must be at least 1, got -5'),
    (['train', 'glow', '--bs', '0'], 2, 'argument --bs: must be at least 1, got 0'),
    (['train', 'glow', '--bs', '-4'], 2, 'argument --bs: must be at least 1, got -4'),
    (['train', 'glow', '--bs', 'many'], 2, "argument --bs: expected a whole number, got 'many'"),
    (['train', 'glow', '--lr', 'nan'], 2, 'argument --lr: must be a finite number, got nan'),
    (['train', 'glow', '--lr', '-1'], 2, 'argument --lr: must be greater than 0'),
    (['train', 'glow', '--size', '0'], 2, 'argument --size: must be at least 1'),
    (['train', 'glow', '--pad', '-1'], 2, 'argument --pad: must be at least 0'),
    (['train', 'glow', '--n-bits', '12'], 2, 'argument --n-bits: must be from 1 to 8, got 12'),
    (['train', 'glow', '--stop-after', '0'], 2, 'argument --stop-after: must be at least 1'),
    (['train', 'glow', '--resume', '--overwrite', '--out', '{tmp}/r'], 2, 'pass one of them'),
    # the data
    (['train', 'glow', '--data', 'no-such-data', '--out', '{tmp}/r'], 2, 'neither a dataset name'),
    (['train', 'glow', '--bs', '100000', '--out', '{tmp}/r'], 2, 'larger than the training split'),
    (['train', 'glow', '--data', '{rgba}', '--out', '{tmp}/r'], 2, 'drop the alpha channel'),
    (['train', 'glow', '--data', '{corrupt}', '--out', '{tmp}/r'], 2, '1 of 9 image files cannot be read'),
    (['train', 'glow', '--data', '{imgs}', '--out', '{imgs}/run'], 2, 'inside the data folder'),
    (['train', 'glow', '--preset', 'imagenet', '--out', '{tmp}/r'], 2, 'Unknown Glow preset'),
    # the run folder
    (['train', 'glow', '--out', '{file}'], 2, 'is a file'),
    (['train', 'glow', '--out', '/proc/deepgen-run'], 2, 'cannot write there'),
    (['train', 'glow', '--out', '{run}'], 2, 'already holds a run'),
    (['train', 'glow', '--resume', '--out', '{tmp}/empty'], 2, 'no checkpoint'),
    (['train', 'nvae', '--resume', '--out', '{run}'], 2, 'holds the weights of Glow'),
    (['train', 'glow', '--resume', '--epochs', '1', '--out', '{run}'], 2, 'asks for no more'),
    # sampling
    (['sample', '/no/such/model.json'], 2, 'No model file'),
    (['sample', '{tmp}'], 2, 'holds no model.json'),
    (['sample', '{evil}'], 2, '--trust'),
    (['sample', '{junk_json}'], 2, 'not a deepgen model.json'),
    (['sample', '{junk_pkl}', '--trust'], 2, 'not a Learner exported by deepgen train'),
    (['sample', '{run}/model.pkl', '--trust', '--temp', 'nan'], 2, 'argument --temp: must be a finite number, got nan'),
    (['sample', '{run}', '--temp', 'inf'], 2, 'argument --temp: must be a finite number, got inf'),
    (['sample', '{run}', '--n', '0'], 2, 'argument --n: must be from 1 to 1024, got 0'),
    (['sample', '{run}/model.pkl', '--trust', '--out', '{tmp}'], 2, 'is a folder'),
    (['sample', '{run}/model.pkl', '--trust', '--out', '{tmp}/grid.jpg'], 2, 'ending in .png'),
    (['sample', '{run}/model.pkl', '--trust', '--temp', '-1'], 2, 'a temperature for Glow: 0 or more'),
    # the comparison
    (['compare', '--budget', '0'], 2, 'positive number of seconds'),
    (['compare', '--budget', '10'], 2, 'at least 30 seconds'),
    (['compare', '--data', 'no-such-data', '--budget', '60'], 2, 'neither a dataset name'),
]

class Evil:
    "A pickle that runs code when it is loaded (here: it creates a file named `marker`)."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, 'w'))

@pytest.fixture(scope='module')
def places(run_dir, tmp_path_factory):
    from PIL import Image
    d = tmp_path_factory.mktemp('hostile')
    imgs = d/'imgs'
    for i in range(9): (imgs/'a').mkdir(parents=True, exist_ok=True); Image.fromarray(np.full((8, 8), 20*i, np.uint8)).save(imgs/'a'/f'{i}.png')
    corrupt = d/'corrupt'; shutil.copytree(imgs, corrupt)
    (corrupt/'a'/'3.png').write_bytes((imgs/'a'/'3.png').read_bytes()[:50])
    np.savez(d/'rgba.npz', x_train=np.zeros((40, 8, 8, 4), np.uint8), y_train=np.zeros(40), x_test=np.zeros((8, 8, 8, 4), np.uint8), y_test=np.zeros(8))
    (d/'file').write_text('not a folder')
    (d/'junk.json').write_text('{"weights": "model.pth"}')
    (d/'junk.pkl').write_bytes(pickle.dumps({'not': 'a Learner'}))
    (d/'evil.pkl').write_bytes(pickle.dumps(Evil(d/'pwned')))
    return dict(run=run_dir, imgs=imgs, corrupt=corrupt, rgba=d/'rgba.npz', file=d/'file', junk_json=d/'junk.json', junk_pkl=d/'junk.pkl',
                evil=d/'evil.pkl', pwned=d/'pwned')

@pytest.mark.parametrize('args,code,words', HOSTILE, ids=[' '.join(a) for a,_,_ in HOSTILE])
def test_hostile_input(args, code, words, places, tmp_path):
    "Each bad input ends with its exit status and one clear line (no traceback), and changes nothing it should not."
    before = sorted(p.name for p in places['run'].iterdir())
    got, out, err = cli(*[a.format(tmp=tmp_path, **places) for a in args])
    assert got == code, (got, err[-2000:])
    assert words in err, err[-2000:]
    assert 'Traceback' not in err and len(err.strip().splitlines()) <= 2, err   # one line (plus, at most, a note)
    assert sorted(p.name for p in places['run'].iterdir()) == before   # the run was not touched
    assert not places['pwned'].exists()                                # no pickle ran

def test_hostile_input_as_a_user_runs_it(places, tmp_path):
    "A few rows through the installed command: same status, one line on stderr, no traceback (the in-process table runs the same code)."
    for args, code, words in [row for row in HOSTILE if row[2] in ('must be at least 1, got 0', '1 of 9 image files cannot be read', '--trust')
                              or row[2].startswith('argument --epochs: must be at least 1, got 0')]:
        r = deepgen(*[a.format(tmp=tmp_path, **places) for a in args])
        assert r.returncode == code and words in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]

# what the Python API answers to the same kind of input: (call, exception, words)
PY_HOSTILE = [
    ("image_dls(bs=0)", ValueError, 'bs must be a positive integer'),
    ("image_dls(bs=-4)", ValueError, 'bs must be a positive integer'),
    ("image_dls(123)", TypeError, 'source must be a dataset name'),
    ("image_dls(max_items=0)", ValueError, 'max_items must be a positive integer'),
    ("image_dls(valid_pct=-0.5)", ValueError, 'valid_pct must be a fraction'),
    ("image_dls(test_pct=-0.2)", ValueError, 'test_pct must be a fraction'),
    ("image_dls('~/no-such-folder-of-images')", FileNotFoundError, 'neither a dataset name'),
    ("load_model(places['evil'])", ValueError, 'trust=True'),
    ("load_model(places['junk_json'])", ValueError, 'not a deepgen model.json'),
]

@pytest.mark.parametrize('call,exc,words', PY_HOSTILE, ids=[c for c,_,_ in PY_HOSTILE])
def test_python_api_hostile_input(call, exc, words, places):
    from deepgen.data import image_dls
    from deepgen.registry import load_model
    with pytest.raises(exc, match=re.escape(words)): eval(call)
    assert not places['pwned'].exists()

# --- the points of the hostile-input review, one test each ---
def test_pickle_runs_only_when_trusted(places, tmp_path):
    "1. `deepgen sample` of a pickle runs nothing unless the user says --trust (even with warnings silenced)."
    r = deepgen('sample', places['evil'], '--out', tmp_path/'s.png')
    assert r.returncode == 2 and '--trust' in r.stderr and not places['pwned'].exists(), r.stderr
    evil = tmp_path/'evil.pkl'; marker = tmp_path/'ran'
    evil.write_bytes(pickle.dumps(Evil(marker)))
    code, _, err = cli('sample', evil, '--trust', '--out', tmp_path/'s.png')
    assert marker.exists() and code == 2 and 'not a Learner' in err   # trusted: it ran, and is then refused as not a Learner

@pytest.mark.parametrize('name', ['glow', 'nvae', 'stylegan2'])
def test_sample_reads_weights_and_json(name, tmp_path):
    "1., 10. `deepgen train` writes model.pth and model.json; `deepgen sample` reads them (folder, JSON or weights) without the pickle; StyleGAN2's --temp is psi."
    out = tmp_path/name
    r = deepgen('train', name, '--epochs', 1, *TINY, '--out', out)
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((out/'model.json').read_text())
    assert info['model'] == name and info['img_shape'] == [1, 8, 8] and set(info['versions']) >= {'deepgen', 'torch'}
    assert torch.load(out/'model.pth', weights_only=True)
    (out/'model.pkl').unlink()   # not needed
    for i, src in enumerate([out, out/'model.json', out/'model.pth']):
        code, _, err = cli('sample', src, '--n', 4, '--temp', 0.5, '--out', tmp_path/f'{i}.png')
        assert code == 0 and (tmp_path/f'{i}.png').exists(), err[-3000:]

@pytest.mark.parametrize('name', ['glow', 'nvae', 'stylegan2'])
def test_resume_is_exact(name, tmp_path):
    "2. N epochs straight and N/2 + `--resume` (in a new process) end with the same weights (and one history row per epoch)."
    a, b = tmp_path/'straight', tmp_path/'resumed'
    args = ['train', name, '--epochs', 2, '--bs', 16, '--max-items', 32]   # `cli` trains with one thread, as the resumed process does
    code, _, err = cli(*args, '--out', a); assert code == 0, err[-3000:]
    code, _, err = cli(*args, '--out', b, '--stop-after', 1); assert code == 0, err[-3000:]
    assert json.loads((b/'summary.json').read_text())['status'] == 'paused after epoch 1 of 2 (--stop-after)'
    r = deepgen(*args, '--out', b, '--resume'); assert r.returncode == 0, r.stderr[-3000:]
    assert 'note' not in r.stderr   # same --epochs: nothing to warn about
    wa, wb = ckpt_weights(a), ckpt_weights(b)
    assert wa.keys() == wb.keys()
    diff = {k: (wa[k].double() - wb[k].double()).abs().max().item() for k in wa if wa[k].is_floating_point()}
    assert max(diff.values()) == 0, sorted(diff.items(), key=lambda kv: -kv[1])[:3]
    assert history_epochs(a) == history_epochs(b) == [0, 1]

def test_overwrite_and_home(run_dir, tmp_path):
    "3., 11. A finished run is replaced only with --overwrite; `~` is the home folder."
    out = tmp_path/'home'/'run'
    shutil.copytree(run_dir, out)
    old = (out/'checkpoint.pth').read_bytes()
    r = deepgen('train', 'glow', '--epochs', 1, *TINY, '--out', '~/run', env={'HOME': str(tmp_path/'home')})
    assert r.returncode == 2 and 'already holds a run' in r.stderr and (out/'checkpoint.pth').read_bytes() == old
    r = deepgen('train', 'glow', '--epochs', 1, *TINY, '--seed', 1, '--out', '~/run', '--overwrite', env={'HOME': str(tmp_path/'home')})
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out/'checkpoint.pth').read_bytes() != old and history_epochs(out) == [0]

def test_writes_are_atomic(tmp_path):
    "4. A full disk while exporting leaves the previous model.pkl whole (fastai's export wrote in place), and no temporary file."
    from unittest.mock import patch
    from deepgen.data import image_dls
    from deepgen.registry import build_learner
    learn = build_learner('glow', image_dls('digits', bs=16, max_items=32))
    learn.path = tmp_path
    learn.export('model.pkl'); good = (tmp_path/'model.pkl').read_bytes()
    with patch('torch.save', side_effect=OSError(28, 'No space left on device')), pytest.raises(OSError, match='No space left'):
        learn.export('model.pkl')
    assert (tmp_path/'model.pkl').read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ['model.pkl']

def test_16_bit_png_keeps_its_values(tmp_path):
    "5. A 16-bit grey PNG loads with its levels (scaled to 8 bits), not as all white."
    from PIL import Image
    from deepgen.data import image_dls
    v = np.linspace(0, 65535, 64).round().astype(np.uint16).reshape(8, 8)
    for i in range(12): (tmp_path/'a').mkdir(exist_ok=True); Image.fromarray(v).save(tmp_path/'a'/f'{i}.png')
    xb, = image_dls(tmp_path, bs=4, valid_pct=0.3, test_pct=0).one_batch()
    assert torch.allclose(xb[0, 0].cpu(), torch.from_numpy(np.round(v / 65535 * 255) / 255).float(), atol=1e-6)

@pytest.mark.parametrize('name', ['glow', 'nvae'])
def test_images_outside_0_1_are_rejected(name):
    "8. Pixels outside [0, 1], or NaN, stop Glow's and NVAE's training with a message that says so."
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.torch_core import TensorImage
    from deepgen.registry import build_learner
    for bad in (2., float('nan')):
        x = torch.rand(32, 1, 8, 8); x[3, 0, 2, 2] = bad
        ds = [(TensorImage(o),) for o in x]
        dls = DataLoaders(DataLoader(ds, bs=16), DataLoader(ds, bs=16)); dls.img_shape, dls.n_bits = (1, 8, 8), 8
        learn = build_learner(name, dls)
        with pytest.raises(ValueError, match=r'\[0, 1\]'), learn.no_bar(), learn.no_logging(): learn.fit(1)

@pytest.mark.parametrize('name', ['glow', 'nvae', 'stylegan2'])
def test_nan_stop_exits_nonzero(name, tmp_path):
    "9. Every model trained by `deepgen train` has the NaN guard; a run that stopped on NaN exits 1 and says so in summary.json."
    code, _, err = cli('train', name, '--epochs', 1, *TINY, '--lr', '1e6', '--out', tmp_path)
    assert code == 1 and 'non-finite' in err, (code, err[-3000:])
    s = json.loads((tmp_path/'summary.json').read_text())
    assert s['status'].startswith('stopped') and 'NaNGuard' in s['stop_reason']
    assert (tmp_path/'model.pkl').exists()   # the last good weights

def test_checkpoint_comes_before_the_sample_grid(tmp_path):
    "12. A sample grid that fails at the end of an epoch (a broken model, bad data) loses no epoch: the checkpoint is already written."
    from deepgen.data import image_dls
    from deepgen.registry import build_learner
    from deepgen.train import Checkpoint, SampleGrid
    def broken(learn): raise RuntimeError('the sample grid failed')
    learn = build_learner('glow', image_dls('digits', bs=16, max_items=32))
    with pytest.raises(RuntimeError, match='sample grid failed'), learn.no_bar(), learn.no_logging():
        learn.fit(2, cbs=[Checkpoint(folder=tmp_path), SampleGrid(broken, folder=tmp_path, show=False)])
    assert learn.load_checkpoint(tmp_path/'checkpoint.pth') == 1

def test_killed_run_leaves_nothing_behind(tmp_path):
    "14. After a kill -9 (temporary files left, an epoch logged but not checkpointed), --resume cleans up and logs each epoch once."
    out = tmp_path/'run'
    code, _, err = cli('train', 'glow', '--epochs', 2, *TINY, '--out', out, '--stop-after', 1); assert code == 0, err[-3000:]
    (out/'.checkpoint.pth.k9x1.tmp').write_bytes(b'half a checkpoint'); (out/'.model.pkl.k9x2.tmp').write_bytes(b'half a pickle')
    with open(out/'history.csv', 'a') as f: f.write('1,8.0,8.0,8.0,100.0,900.0,00:01\n')   # epoch 1 logged, then killed before its checkpoint
    code, _, err = cli('train', 'glow', '--epochs', 2, *TINY, '--out', out, '--resume'); assert code == 0, err[-3000:]
    assert not list(out.glob('.*.tmp')) and history_epochs(out) == [0, 1]

def test_help_imports_nothing_heavy():
    "15. `deepgen --help` and `deepgen train --help` import neither torch nor fastai (so they answer in a fraction of a second)."
    code = ("import sys\nfrom deepgen.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['sample', '--help']):\n"
            "    try: main(argv)\n    except SystemExit: pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'fastai', 'matplotlib', 'deepgen.compare') if m in sys.modules))")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV, timeout=120)
    assert 'HEAVY []' in r.stdout, r.stdout[-500:] + r.stderr[-2000:]

def test_help_explains_options():
    r = deepgen('train', '--help')
    assert r.returncode == 0
    for opt in ('--data', '--epochs', '--out', '--precision', '--resume', '--overwrite', '--preset', '--stop-after'): assert opt in r.stdout

@pytest.mark.parametrize('name', ['glow', 'nvae', 'stylegan2'])
def test_show_results(name):
    "`learn.show_results()` shows validation images, their reconstructions where the model has `reconstruct`, and samples."
    from deepgen.data import image_dls
    from deepgen.registry import build_learner
    learn = build_learner(name, image_dls('digits', bs=16, max_items=32))
    grid = learn.show_results(max_n=4, show=False)
    rows = 3 if hasattr(learn.model, 'reconstruct') else 2
    assert grid.shape[-2:] == (rows*8 + rows + 1, 4*8 + 5)
    assert torch.isfinite(grid).all()

LAUNCHERS = {'torchrun': lambda port: [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', str(port)],
             'accelerate': lambda port: [shutil.which('accelerate') or 'accelerate', 'launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
                                         '--mixed_precision', 'no', '--dynamo_backend', 'no', '--main_process_port', str(port)]}

@pytest.mark.parametrize('launcher,model', [('torchrun', 'glow'), ('torchrun', 'stylegan2'), ('accelerate', 'nvae')])
def test_train_under_launchers(launcher, model, tmp_path):
    "The README's multi-process commands, on two CPU processes (Gloo): one set of files, written by rank 0."
    if launcher == 'accelerate' and not shutil.which('accelerate'): pytest.skip("accelerate is not installed (deepgen's `distributed` extra)")
    out = tmp_path/model
    r = subprocess.run([*LAUNCHERS[launcher](free_port()), '-m', 'deepgen.cli', 'train', model, '--epochs', '1', '--bs', '8',
                        '--max-items', '64', '--out', str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count('"model"') == 2   # both processes trained and printed their summary
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    hist = (out/'history.csv').read_text().splitlines()
    assert len(hist) == 2 and float(hist[1].split(',')[hist[0].split(',').index('img_per_sec')]) > 0
