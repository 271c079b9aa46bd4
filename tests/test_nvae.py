"NVAE outside a notebook: the exported Learner round trip, the model without fastai, the names that moved, and the benchmark's dry runs."
import json, os, subprocess, sys, warnings
from pathlib import Path
import pytest, torch
from fastai.learner import load_learner
from fastai.torch_core import set_seed
from deepgen.data import image_dls
from deepgen.nvae import NVAE
from deepgen.nvae_learner import nvae_learner

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(nf=8, n_latent=4, groups=(2, 2), n_pre=1, n_pre_cells=1, n_post=1, n_post_cells=1, n_enc_cells=1, n_dec_cells=1)

def test_export_and_load(tmp_path):
    set_seed(0)
    dls = image_dls('digits', bs=16, max_items=64)
    learn = nvae_learner(dls, n_flows=2, **TINY)       # flows: masked, weight-normalised convolutions survive the pickle
    learn.path = tmp_path
    with learn.no_bar(), learn.no_logging(): learn.fit_nvae(1)
    learn.export('nvae.pkl')
    loaded = load_learner(tmp_path/'nvae.pkl')
    assert isinstance(loaded.model, NVAE)
    for p, q in zip(learn.model.state_dict().values(), loaded.model.state_dict().values()): assert torch.equal(p.cpu(), q.cpu())
    x = dls.valid.one_batch()[0][:4]
    torch.manual_seed(0); a = learn.model.eval().cpu()(x.cpu())
    torch.manual_seed(0); b = loaded.model.eval().cpu()(x.cpu())
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
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

TORCH_ONLY = "import sys; [sys.modules.__setitem__(m, None) for m in ('fastai', 'matplotlib', 'torchvision', 'fasttransform')]\n"

def test_models_layer_without_fastai():
    "deepgen.nvae imports and trains a step with torch, numpy and fastcore alone; config and state_dict rebuild it."
    code = TORCH_ONLY + """
import json, torch
from deepgen.nvae import NVAE, NVAELoss
torch.manual_seed(0)
m = NVAE(img_shape=(1, 8, 8), nf=8, n_latent=4, groups=(2, 2), n_pre=1, n_pre_cells=1, n_post=1, n_post_cells=1, n_enc_cells=1, n_dec_cells=1)
loss_fn, opt = NVAELoss(m.n_dims, m.kl_alpha), torch.optim.Adamax(m.parameters(), lr=1e-2, eps=1e-3, weight_decay=3e-4)
x = (torch.rand(4, 1, 8, 8) > 0.5).float()
loss_fn.warm_up(0.1)
loss = loss_fn(m(x)) + loss_fn.spectral(m)
loss.backward(); opt.step()
m2 = NVAE.from_config(json.loads(json.dumps(m.config))); m2.load_state_dict(m.state_dict())
assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), m2.state_dict().values()))
assert m2.bits_per_dim(x, k=2).shape == (4,) and m2.sample(2).shape == (2, 1, 8, 8)
print('ok', float(loss))
"""
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert r.returncode == 0 and r.stdout.startswith('ok'), r.stderr[-3000:]

def test_moved_names_warn():
    import deepgen.nvae, deepgen.nvae_learner, deepgen.train
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        from deepgen.nvae import nvae_learner as a, SpectralReg as b, Adamax as c
    assert a is deepgen.nvae_learner.nvae_learner and b is deepgen.nvae_learner.SpectralReg and c is deepgen.train.Adamax
    assert [w.category for w in ws] == [DeprecationWarning]*3 and 'deepgen.nvae_learner' in str(ws[0].message)
    assert not {'nvae_learner', 'SpectralReg', 'Adamax'} & set(deepgen.nvae.__all__)
    with pytest.raises(AttributeError, match='no attribute'): deepgen.nvae.not_a_name

def test_benchmark_plain_speed_run():
    "The plain PyTorch loop of the benchmark (the path taken without fastai) runs the model's loss and regulariser."
    cmd = [sys.executable, str(ROOT/'benchmarks'/'nvae.py'), '--speed', '--path', 'plain', '--device', 'cpu', '--steps', '2', '--threads', '1']
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'}, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout[r.stdout.index('{'):])
    assert res['path'] == 'plain' and res['img_per_sec'] > 0

def test_paper_protocol_on_the_crop():
    "paper_nll scores the 28x28 digit of a padded MNIST image, refuses models of another kind, and says how many images it scored."
    from deepgen.nvae import paper_nll, iw_nll
    torch.manual_seed(0)
    m = NVAE(img_shape=(1, 32, 32), nf=4, n_latent=2, groups=(1, 1), n_pre=2, n_pre_cells=1, n_post=2, n_post_cells=1,
             n_enc_cells=1, n_dec_cells=1, binarize=False).eval()
    x = torch.nn.functional.pad((torch.rand(3, 1, 28, 28) > 0.7).float(), (2, 2, 2, 2))
    r = paper_nll(m, x, k=3, bs=3)
    assert (r['n_images'], r['k'], r['unit'], r['paper']) == (3, 3, 'nats', 78.01)
    full, crop = iw_nll(m, x, k=200, crop=0).mean(), iw_nll(m, x, k=200, crop=2).mean()
    assert full > crop + 10          # the 240 border pixels cost nats at initialisation; the protocol leaves them out
    with pytest.raises(ValueError, match='needs a model of'): paper_nll(m, x, 'cifar10')

def test_paper_protocol_cifar_in_bits_per_dim():
    "The 8-bit CIFAR-10 protocol scores all 3x32x32 sub-pixels and reports bits per dimension."
    from deepgen.nvae import paper_nll, iw_nll
    torch.manual_seed(0)
    m = NVAE(img_shape=(3, 32, 32), nf=4, n_latent=2, groups=(1, 1), n_pre=2, n_pre_cells=1, n_post=2, n_post_cells=1,
             n_enc_cells=1, n_dec_cells=1, likelihood='logistic', n_bits=8).eval()
    x = torch.randint(0, 256, (2, 3, 32, 32))/255
    torch.manual_seed(1); r = paper_nll(m, x, 'cifar10', k=2)
    torch.manual_seed(1); nats = iw_nll(m, x, k=2)          # the same draws: the same images in one chunk
    assert r['unit'] == 'bits/dim' and r['n_images'] == 2 and r['paper'] == 2.91
    assert torch.allclose(torch.tensor(r['values'], dtype=torch.float64), nats.double()/(3072*0.6931471805599453), atol=1e-5)
    with pytest.raises(ValueError, match='needs a model of'): paper_nll(NVAE.from_config({**m.config, 'n_bits': 5}), x, 'cifar10')
