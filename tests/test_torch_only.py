"""The models layer with torch, numpy and fastcore alone: in a Python where fastai, fasttransform, matplotlib and
torchvision cannot be imported, every model module imports, and Glow, NVAE and StyleGAN2 each train a step."""
import json, os, subprocess, sys, textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ['core', 'flows', 'glow', 'modconv', 'stylegan2', 'stylegan2_loss', 'nvae_math', 'nvae']
BLOCKED = ['fastai', 'fasttransform', 'matplotlib', 'torchvision']

# Runs in a fresh interpreter: every import finder is wrapped to find nothing under the blocked names, as on a machine
# without those packages (`import` fails, `importlib.util.find_spec` returns None).
SCRIPT = textwrap.dedent('''
    import importlib, json, sys
    BLOCKED = set(sys.argv[1].split(','))
    class Hide:
        def __init__(self, f): self.f = f
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED: return None
            fs = getattr(self.f, 'find_spec', None)
            return fs(name, path, target) if fs else None
        def __getattr__(self, a): return getattr(self.f, a)
    sys.meta_path[:] = [Hide(f) for f in sys.meta_path]
    for m in sys.argv[2].split(','): importlib.import_module('deepgen.' + m)
    import torch
    torch.manual_seed(0); torch.set_num_threads(1)
    x = torch.randint(0, 256, (4, 1, 8, 8)) / 255.
    out = {}

    def moved(m, before): return any(not torch.equal(p, before[k]) for k, p in m.state_dict().items() if p.is_floating_point())

    from deepgen.glow import glow_preset                        # Glow: its forward pass is its loss, bits/dim per image
    g = glow_preset('mnist', n_levels=2, n_steps=2, hidden=16, img_size=8)
    with torch.no_grad(): g(x)                                  # ActNorm's data-dependent initialisation
    before, opt = {k: v.clone() for k, v in g.state_dict().items()}, torch.optim.Adamax(g.parameters(), 1e-3)
    loss = g(x).mean(); loss.backward(); opt.step()
    out['glow'] = dict(loss=loss.item(), moved=moved(g, before))

    from deepgen.nvae import nvae_preset, NVAELoss              # NVAE: the Learner's full step, the negative ELBO in bits/dim with
    v = nvae_preset('mnist', img_shape=(1, 8, 8), nf=8, n_latent=8, groups=(2, 2), n_pre=1, n_pre_cells=2, n_post=1, n_post_cells=2,
                    n_enc_cells=1, n_dec_cells=1, likelihood='logistic')   # the KL warm-up and balancing (KLWarmup) and the spectral term (SpectralReg)
    before, opt = {k: t.clone() for k, t in v.state_dict().items()}, torch.optim.Adamax(v.parameters(), 1e-3)
    lf = NVAELoss(v.n_dims, v.kl_alpha); lf.warm_up(0.1)        # a tenth into training: KL weight 1/3, balanced
    loss = lf(v(x)); sr = lf.spectral(v, 1e-2); (loss + sr).backward(); opt.step()
    out['nvae'] = dict(loss=loss.item(), moved=moved(v, before), kl_coeff=lf.kl_coeff, balance=lf.balance, spectral=sr.item())

    from deepgen.stylegan2 import stylegan2_preset              # StyleGAN2: the plain-PyTorch D/G step the Learner runs
    from deepgen.stylegan2_loss import StyleGAN2Step, R1, PathLength
    s = stylegan2_preset('digits')
    before = {k: t.clone() for k, t in s.state_dict().items()}
    adam = lambda m: torch.optim.Adam(m.parameters(), 2e-3, betas=(0., 0.99))
    losses = StyleGAN2Step(s, adam(s.G), adam(s.D), regs=[R1(), PathLength()])(x)
    out['stylegan2'] = dict(loss=sum(l.item() for l in losses.values()), phases=sorted(losses), moved=moved(s, before))
    out['imported'] = sorted({k.split('.')[0] for k in sys.modules} & BLOCKED)
    print(json.dumps(out))
''')

def test_models_without_fastai():
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]), 'OMP_NUM_THREADS': '1', 'PYTHONWARNINGS': 'ignore'}
    r = subprocess.run([sys.executable, '-c', SCRIPT, ','.join(BLOCKED), ','.join(MODULES)], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out.pop('imported') == []
    for name, o in out.items():
        assert o['moved'], f'{name}: the step changed no weight'
        assert o['loss'] == o['loss'] and abs(o['loss']) < 1e6, f"{name}: loss {o['loss']}"
    assert 'D' in out['stylegan2']['phases'] and 'G' in out['stylegan2']['phases']
    n = out['nvae']
    assert 0 < n['kl_coeff'] < 1 and n['balance'], n                      # the KL warm-up and balancing were on
    assert n['spectral'] > 0 and n['spectral'] == n['spectral'], n        # and the spectral regulariser was in the loss

def test_the_refusal_works():
    "The same finder makes `import fastai` fail as on a machine without it (so the test above can fail)."
    code = SCRIPT.split('for m in')[0] + 'import fastai\n'
    r = subprocess.run([sys.executable, '-c', code, ','.join(BLOCKED), ''], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and 'ModuleNotFoundError' in r.stderr
