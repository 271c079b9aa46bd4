"""Where Glow's samples overflow, and what stops it (issue 12): one variant of `glow_preset('mnist')` trained by a plain loop.

The protocol of the table in nbs/05_glow.ipynb: MNIST padded to 1x32x32 (8 bits unless `--bits`), batch 32, Adam with a
linear warm-up, `--steps` steps, the same initialisation seed and data order for every variant, one thread. After
training it prints one JSON line (and appends it to `--out`, if given): the test bits/dim on the first `--test-n` test
images (one dequantisation draw, seed 0) and, at each T in 0.5, 0.7 and 1.0, how many of `--samples` samples (drawn in
batches of 100, seed 1) are not finite and how many are finite but leave the data range [-1/2, 1/2] of the model's
continuous input by more than one bin. `--diag` also runs the inverse of 100 samples at T = 1 layer by layer and prints,
per coupling, the smallest scale s it divides by and the largest |x| after it.

    python benchmarks/glow_overflow.py --arch plain              # deepgen's earlier architecture
    python benchmarks/glow_overflow.py                           # the official code's coupling network, border and top prior
    python benchmarks/glow_overflow.py --s-min 0.1 --diag        # and a floor on the coupling scale
    python benchmarks/glow_overflow.py --steps 2 --test-n 16 --samples 100   # a dry run in seconds
"""
from __future__ import annotations
import argparse, json, math, sys, time, warnings
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F
from deepgen.core import find_file
from deepgen.glow import glow_preset

def load_mnist(path):
    "MNIST train and test images as uint8 `[N, 1, 32, 32]` (padded by 2)."
    d = np.load(path)
    f = lambda a: F.pad(torch.from_numpy(a)[:, None], [2]*4)
    return f(d['x_train']), f(d['x_test'])

def to_img(u8, bits):
    "uint8 images as `n_bits` images in [0, 1] on the grid k/(2**bits - 1)."
    return (u8.long() // 2**(8 - bits)).float() / (2**bits - 1)

def train(args, xtr):
    "The variant `args` describes, trained for `args.steps` steps of batch 32; returns the model and the losses."
    torch.manual_seed(args.seed)
    model = glow_preset('mnist', arch=args.arch, s_min=args.s_min, affine=not args.additive, n_bits=args.bits)
    perm = torch.randperm(len(xtr), generator=torch.Generator().manual_seed(args.seed))
    bs = 32
    batch = lambda i: to_img(xtr[perm[(i*bs) % len(xtr):(i*bs) % len(xtr) + bs]], args.bits)
    torch.manual_seed(args.seed)
    with torch.no_grad(): model(batch(0))  # data-dependent ActNorm initialisation
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    losses = []
    for i in range(args.steps):
        for g in opt.param_groups: g['lr'] = args.lr * min(1., (i + 1) / args.warmup)
        loss = model(batch(i)).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]): break
    return model, losses

@torch.no_grad()
def evaluate(model, xte, args)->dict:
    "Test bits/dim and, per temperature, the samples that are not finite or leave the data range by more than one bin."
    model.eval(); torch.manual_seed(0)
    x = xte[:args.test_n]
    bpd = sum(model(to_img(x[i:i+250], args.bits)).sum().item() for i in range(0, len(x), 250)) / len(x)
    res, tol = {}, 0.5 + 1 / model.n_bins
    for t in (0.5, 0.7, 1.0):
        torch.manual_seed(1); nf = far = 0
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # `sample` warns about non-finite samples: they are counted here
            for i in range(0, args.samples, 100):
                x = model.sample(min(100, args.samples - i), t, as_image=False).flatten(1)
                fin = torch.isfinite(x).all(1)
                nf += int((~fin).sum()); far += int((fin & (x.abs() > tol).any(1)).sum())
        res[str(t)] = dict(non_finite=nf, out_of_range=far)
    return dict(test_bpd=round(bpd, 4), samples=res)

@torch.no_grad()
def diagnose(m, n=100, temp=1.):
    "Run the inverse of `n` samples at `temp` layer by layer: per coupling, the smallest s it divides by and the largest |x| after it."
    torch.manual_seed(1)
    L, (h, w) = m.n_levels, m._hw
    s = 2**L
    mean, logs = m.top(None, (h//s, w//s))
    x = mean + temp * logs.exp() * torch.randn(n, m.top_ch, h//s, w//s)
    rows = []
    for i in reversed(range(L)):
        if i < L-1:
            mean, logs = m.priors[i](x)
            rows.append(dict(layer=f'split prior {i}', max_logs=round(logs.max().item(), 3)))
            x = torch.cat([x, mean + temp * logs.exp() * torch.randn_like(mean)], 1)
        for k, st in reversed(list(enumerate(m.levels[i]))):
            c = st.coupling
            _, ls = c._shift_scale(x.split([c.na, c.nb], 1)[0])
            x = c.inverse(x)
            a = x.flatten(1).abs().amax(1).nan_to_num(float('inf'))
            rows.append(dict(layer=f'level {i} step {k} coupling', min_s=None if ls is None else float(ls.min().exp()),
                             median_max_abs=float(a.median()), non_finite=int((~torch.isfinite(a)).sum()),
                             actnorm_max_gain=float((-st.actnorm.logs).exp().max())))
            x = st.actnorm.inverse(st.invconv.inverse(x))
        x = m.squeeze.inverse(x)
    return rows

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='official', help="Glow's arch: 'official' or 'plain'")
    p.add_argument('--s-min', type=float, default=0., help='floor on the coupling scale s')
    p.add_argument('--additive', action='store_true', help='additive couplings')
    p.add_argument('--lr', type=float, default=5e-4, help='Adam learning rate')
    p.add_argument('--warmup', type=int, default=50, help='steps of linear warm-up')
    p.add_argument('--steps', type=int, default=600, help='training steps of batch 32')
    p.add_argument('--bits', type=int, default=8, help='bit depth of the data')
    p.add_argument('--test-n', type=int, default=2000, help='test images for bits/dim')
    p.add_argument('--samples', type=int, default=1000, help='samples at each temperature')
    p.add_argument('--seed', type=int, default=0, help='seed of the initialisation and the data order')
    p.add_argument('--threads', type=int, default=1, help='torch threads')
    p.add_argument('--data', default=None, help="mnist.npz (Keras layout); default: deepgen.core.find_file('mnist.npz')")
    p.add_argument('--diag', action='store_true', help='print the layer-by-layer inverse of 100 samples at T = 1 (stderr)')
    p.add_argument('--out', default=None, help='append the JSON line to this file')
    args = p.parse_args(argv)
    path = Path(args.data) if args.data else find_file('mnist.npz')
    if path is None or not path.exists(): sys.exit('mnist.npz not found: pass --data PATH, or set DEEPGEN_DATA to its folder.')
    torch.set_num_threads(args.threads)
    xtr, xte = load_mnist(path)
    t0 = time.time()
    model, losses = train(args, xtr)
    res = dict({k: v for k,v in vars(args).items() if k != 'samples'}, n_samples=args.samples, train_s=round(time.time() - t0), final_loss=round(float(np.mean(losses[-20:])), 4), **evaluate(model, xte, args))
    if args.diag:
        for r in diagnose(model): print(json.dumps(r), file=sys.stderr)
    print(json.dumps(res))
    if args.out:
        with open(args.out, 'a') as f: f.write(json.dumps(res) + '\n')
    return res

if __name__ == '__main__': main()
