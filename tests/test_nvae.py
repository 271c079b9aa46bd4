"NVAE outside a notebook: the exported Learner round trip a user relies on, and the benchmark script's dry run."
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from fastai.learner import load_learner
from fastai.torch_core import set_seed
from deepgen.data import image_dls
from deepgen.nvae import nvae_learner, NVAE

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(nf=8, n_latent=4, groups=(2, 2), n_pre=1, n_pre_cells=1, n_post=1, n_post_cells=1, n_enc_cells=1, n_dec_cells=1)

def test_export_and_load(tmp_path):
    set_seed(0)
    dls = image_dls('digits', bs=16, max_items=64)
    learn = nvae_learner(dls, **TINY)
    learn.path = tmp_path
    with learn.no_bar(), learn.no_logging(): learn.fit_nvae(1)
    learn.export('nvae.pkl')
    loaded = load_learner(tmp_path/'nvae.pkl')
    assert isinstance(loaded.model, NVAE)
    for p, q in zip(learn.model.state_dict().values(), loaded.model.state_dict().values()): assert torch.equal(p.cpu(), q.cpu())
    s = loaded.model.sample(4, temp=0.7, bn_iters=2)
    assert s.shape == (4, 1, 8, 8) and bool(((s >= 0) & (s <= 1)).all())

def test_benchmark_dry_run(tmp_path):
    out = tmp_path/'nvae.json'
    cmd = [sys.executable, str(ROOT/'benchmarks'/'nvae.py'), '--steps', '2', '--time-steps', '2', '--threads', '1',
           '--iw-samples', '2', '--iw-images', '8', '--data', 'digits', '--no-memory', '--out', str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res['params'] > 1_000_000 and res['train_steps'] == 2 and res['test_images'] == 8
    assert res['train_img_per_s']['1'] > 0
    assert res['test_iw_nll_nats'] > 0 and res['test_iw_nll_bpd'] == pytest.approx(res['test_iw_nll_nats']/(1024*0.6931471805599453), rel=1e-3)
