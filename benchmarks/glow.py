"""Glow benchmark: the DESIGN configuration (K=8, L=3, width 128, affine, LU, learned prior) on MNIST padded to 1x32x32, batch 32.

Prints one JSON object: training images/second of `glow_learner` (fastai) with one thread and with all threads,
optionally the same model trained by a bare PyTorch loop (`--baseline`) for comparison, peak memory, parameter
count, and test bits/dim after `--steps` training steps.

    python benchmarks/glow.py --steps 200                 # images/s (1 thread and all) + test bpd after 200 steps
    python benchmarks/glow.py --steps 100 --baseline      # also the bare PyTorch loop, same model and optimiser
    python benchmarks/glow.py --steps 2 --test-n 64       # a dry run in seconds
    python benchmarks/glow.py --steps 20 --profile        # also print torch.profiler's top operators (stderr)
    python benchmarks/glow.py --steps 100 --amp bf16      # mixed precision (coupling networks in bf16)
"""
from __future__ import annotations
import argparse, json, math, os, platform, resource, sys, time, warnings
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from deepgen.core import n_params, set_seed
from deepgen.data import image_dls
from deepgen.glow import glow_learner, glow_preset, Glow, ActNorm
from fastai.callback.core import Callback, CancelFitException

BS = 32

def default_data():
    "The first mnist.npz found in the usual places."
    here = Path(__file__).resolve().parents[1]
    for p in (Path('/work/shared/data/mnist.npz'), here.parent/'shared/data/mnist.npz', Path('../shared/data/mnist.npz')):
        if p.exists(): return p
    return None

class StepTimer(Callback):
    "Time training steps after `skip` warm-up steps; stop the fit after `steps` steps (no validation)."
    order = 100
    def __init__(self, steps, skip): self.steps,self.skip,self.times = steps,skip,[]
    def after_batch(self):
        if not self.training: return
        self.times.append(time.perf_counter())
        if len(self.times) >= self.steps: raise CancelFitException()

def img_per_s(times, skip, bs=BS):
    "Images per second over the steps after the first `skip` (the first steps build kernels and caches)."
    t = times[skip:] if len(times) > skip + 1 else times
    return (len(t) - 1) * bs / (t[-1] - t[0]) if len(t) > 1 else float('nan')

def fastai_run(dls, args, n_threads, profile=False):
    "Train with `glow_learner` for `args.steps` steps; return the Learner and its images/s."
    torch.set_num_threads(n_threads)
    set_seed(0)
    learn = glow_learner(dls, preset='mnist', checkpointing=args.checkpointing, channels_last=not args.no_channels_last,
                         warmup=args.warmup, sample_every=None)
    if args.amp: learn.to_amp(args.amp)
    skip = min(3, max(0, args.steps - 2))
    timer = StepTimer(args.steps, skip)
    with learn.no_bar(), learn.no_logging():
        if profile:
            from torch.profiler import profile as tprofile, ProfilerActivity
            with tprofile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == 'cuda' else [])) as prof:
                learn.fit(1, cbs=timer)
            print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25), file=sys.stderr)
        else: learn.fit(1, cbs=timer)
    return learn, img_per_s(timer.times, skip)

def load_mnist(path):
    "MNIST train images as uint8 [60000, 1, 32, 32] (padded by 2) and test images, straight from the .npz."
    d = np.load(path)
    f = lambda a: F.pad(torch.from_numpy(a)[:, None], [2]*4)
    return f(d['x_train']), f(d['x_test'])

def baseline_run(xtr, args, n_threads, device):
    "The same Glow trained by a bare PyTorch loop: tensor batches, Adamax, linear warm-up; returns model and images/s."
    torch.set_num_threads(n_threads)
    set_seed(0)
    model = glow_preset('mnist', checkpointing=args.checkpointing).to(device)
    if not args.no_channels_last: model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adamax(model.parameters(), lr=1e-3, foreach=True)
    n_warm = args.warmup if isinstance(args.warmup, int) else max(1, min(1000, int(args.warmup * (len(xtr)*0.9 // BS))))
    perm = torch.randperm(len(xtr))
    batch = lambda i: (xtr[perm[i*BS:(i+1)*BS]].to(device, non_blocking=True).float() / 255)
    with torch.no_grad(): model(batch(0))  # data-dependent ActNorm init on the first batch
    model.train()
    scaler = torch.amp.GradScaler(device) if args.amp == 'fp16' else None
    skip = min(3, max(0, args.steps - 2)); times = []
    for i in range(args.steps):
        for g in opt.param_groups: g['lr'] = 1e-3 * min(1., (i + 1) / n_warm)
        with torch.autocast(device, dtype=torch.bfloat16 if args.amp == 'bf16' else torch.float16, enabled=bool(args.amp)):
            loss = model(batch(i % (len(xtr) // BS))).mean()
        opt.zero_grad(set_to_none=True)
        if scaler is None: loss.backward(); opt.step()
        else: scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        if device == 'cuda': torch.cuda.synchronize()
        times.append(time.perf_counter())
    return model, img_per_s(times, skip)

@torch.no_grad()
def test_bpd(model, xte, n, device, bs=250):
    "Mean bits/dim of `model` on the first `n` MNIST test images (one dequantisation draw each)."
    model.eval(); torch.manual_seed(0); tot = 0.
    x = xte[:n]
    for i in range(0, len(x), bs):
        tot += model(x[i:i+bs].to(device).float() / 255).sum().item()
    return tot / len(x)

def peak_mem_mib(device):
    if device == 'cuda': return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=100, help='training steps per measurement (the first 3 are not timed)')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--threads', default='1,all', help="comma-separated thread counts to measure; 'all' = torch's default")
    p.add_argument('--data', default=None, help='path to mnist.npz (default /work/shared/data/mnist.npz or ../shared/data)')
    p.add_argument('--checkpointing', action='store_true', help='gradient checkpointing per step of flow')
    p.add_argument('--baseline', action='store_true', help='also train the same model with a bare PyTorch loop')
    p.add_argument('--amp', default=None, choices=['bf16', 'fp16'], help='mixed precision (deepgen.train.AutoMixedPrecision)')
    p.add_argument('--no-channels-last', action='store_true', help='keep convolution weights in NCHW')
    p.add_argument('--warmup', type=float, default=0.1, help='warm-up: fraction of an epoch (<1) or iterations (>=1)')
    p.add_argument('--test-n', type=int, default=1000, help='test images for the bits/dim figure (10000 = all)')
    p.add_argument('--profile', action='store_true', help='print torch.profiler top operators of the fastai run to stderr')
    args = p.parse_args(argv)
    if args.warmup >= 1: args.warmup = int(args.warmup)
    path = Path(args.data) if args.data else default_data()
    if path is None or not Path(path).exists(): sys.exit(f"mnist.npz not found (looked at {args.data or 'the default places'}): pass --data PATH.")
    if args.device == 'cuda' and not torch.cuda.is_available(): sys.exit('--device cuda but no CUDA device is available.')
    all_threads = torch.get_num_threads()
    threads = [all_threads if t.strip() == 'all' else int(t) for t in args.threads.split(',')]
    warnings.filterwarnings('ignore')

    dls = image_dls('mnist', pad=2, bs=BS, path=path, num_workers=0, device=torch.device(args.device))
    xtr, xte = load_mnist(path)
    res = dict(model='glow', config=dict(preset='mnist', K=8, L=3, hidden=128, affine=True, lu=True, learn_prior=True,
                                         image='1x32x32', batch=BS, checkpointing=args.checkpointing,
                                         channels_last=not args.no_channels_last, amp=args.amp),
               device=args.device, cpu=platform.processor() or platform.machine(), torch=torch.__version__,
               steps=args.steps, fastai_img_per_s={}, baseline_img_per_s={} if args.baseline else None)
    learn = None
    for i,nt in enumerate(threads):
        learn, ips = fastai_run(dls, args, nt, profile=args.profile and i == len(threads) - 1)
        res['fastai_img_per_s'][str(nt)] = round(ips, 1)
        if args.baseline:
            _, ips_b = baseline_run(xtr, args, nt, args.device)
            res['baseline_img_per_s'][str(nt)] = round(ips_b, 1)
    if args.baseline:
        res['fastai_vs_baseline'] = {k: round(res['fastai_img_per_s'][k] / v, 3) for k,v in res['baseline_img_per_s'].items()}
    res['params'] = n_params(learn.model)
    res['test_images'] = min(args.test_n, len(xte))
    res['test_bpd'] = round(test_bpd(learn.model, xte, args.test_n, args.device), 4)
    res['peak_mem_mib'] = round(peak_mem_mib(args.device), 1)
    res['threads_all'] = all_threads
    print(json.dumps(res, indent=1))
    return res

if __name__ == '__main__': main()
