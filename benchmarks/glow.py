"""Glow benchmark: deepgen's benchmark configuration, `glow_preset('mnist')` (K=8, L=3, width 128, affine with the official coupling network and a floor of 0.2 on the scale, LU, learned prior), on MNIST padded to 1x32x32, batch 32.

Prints one JSON object: training images/second with one thread and with all threads, test bits/dim after `--steps`
training steps, and, for samples drawn after training at T = 0.7 and 1.0, the fraction that is not finite or leaves the
data range by more than one bin; also peak memory and the parameter count. What is timed is `glow_learner` (fastai)
when fastai is installed and otherwise the same model and loss (`deepgen.glow.bpd`) in a plain PyTorch loop, which
`--baseline` also runs beside the Learner.

    python benchmarks/glow.py --steps 200                 # images/s (1 thread and all), test bpd and samples after 200 steps
    python benchmarks/glow.py --steps 100 --baseline      # also the plain PyTorch loop, same model, loss and optimiser
    python benchmarks/glow.py --steps 2 --test-n 64 --samples 16   # a dry run in seconds
    python benchmarks/glow.py --steps 20 --profile        # also print torch.profiler's top operators (stderr)
    python benchmarks/glow.py --steps 100 --amp bf16      # mixed precision (coupling networks in bf16)

MNIST is read from `--data`, or else from the first mnist.npz (Keras layout) that `deepgen.core.find_file` finds. The
speed options shared by every benchmark (--amp, --channels-last/--no-channels-last, --compile, --fused; see
benchmarks/_speed.py) apply to both training loops; the JSON also gives the FLOPs of one training step and, on CUDA,
the fraction of the GPU's peak the step achieves. `--speed` times the training step alone on random images, at the
benchmark configuration (`--config design`) or the paper's CIFAR-10 model (`--config paper`), as benchmarks/gpu.sh does:

    python benchmarks/glow.py --speed --config paper --device cuda --steps 50
    python benchmarks/glow.py --speed --device cpu --steps 2
"""
from __future__ import annotations
import argparse, importlib.util, json, math, platform, sys, time, warnings
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

FASTAI = all(importlib.util.find_spec(p) is not None for p in ('fastai', 'fastcore'))  # before any import could change the answer
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _speed as S
from deepgen.core import n_params, find_file, peak_memory_mib, reset_peak_memory
from deepgen.glow import glow_preset, bpd
BS = 32
CONFIGS = dict(
    design=dict(preset='mnist', shape=(1, 32, 32), bs=32, gpu_steps=100,
                desc="deepgen's benchmark configuration, glow_preset('mnist'): K=8, L=3, width 128, affine (official coupling network, s_min 0.2), LU, learned prior; "
                     "1x32x32 (MNIST padded), batch 32"),
    paper=dict(preset='cifar10', shape=(3, 32, 32), bs=64, gpu_steps=50,
               desc="the paper's CIFAR-10 model: K=32, L=3, width 512, affine, LU, learned prior (44.6M parameters); "
                    "3x32x32, batch 64 (the reference code's default)",
               dry=dict(bs=2, note='batch 2')),
)

def seed_all(seed=0):
    "Seed Python's, numpy's and torch's generators (fastai's `set_seed` without fastai)."
    import random
    random.seed(seed); np.random.seed(seed); torch.manual_seed(seed)

def img_per_s(times, skip, bs=BS):
    "Images per second over the steps after the first `skip` (the first steps build kernels and caches)."
    t = times[skip:] if len(times) > skip + 1 else times
    return (len(t) - 1) * bs / (t[-1] - t[0]) if len(t) > 1 else float('nan')

def step_timer(steps):
    "A callback recording when each training step ends, stopping the fit after `steps` steps (no validation)."
    from fastai.callback.core import Callback, CancelFitException
    class StepTimer(Callback):
        order = 100
        def __init__(self): self.times = []
        def after_batch(self):
            if not self.training: return
            self.times.append(time.perf_counter())
            if len(self.times) >= steps: raise CancelFitException()
    return StepTimer()

def fastai_run(dls, args, n_threads, profile=False, notes=None):
    "Train with `glow_learner` for `args.steps` steps; return the model and its images/s."
    from deepgen.glow_learner import glow_learner
    torch.set_num_threads(n_threads)
    seed_all(0)
    learn = glow_learner(dls, preset='mnist', checkpointing=args.checkpointing, channels_last=args.opts.channels_last,
                         warmup=args.warmup, sample_every=None)
    S.apply_options(learn, args.opts, notes)  # the whole model compiled: its step is one forward pass
    skip = min(3, max(0, args.steps - 2))
    timer = step_timer(args.steps)
    with learn.no_bar(), learn.no_logging():
        if profile:
            from torch.profiler import profile as tprofile, ProfilerActivity
            with tprofile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == 'cuda' else [])) as prof:
                learn.fit(1, cbs=timer)
            print(prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=25), file=sys.stderr)
        else: learn.fit(1, cbs=timer)
    return learn.model, img_per_s(timer.times, skip), learn.opt

def load_mnist(path):
    "MNIST train and test images as uint8 `[N, 1, 32, 32]` (padded by 2), straight from the .npz."
    d = np.load(path)
    f = lambda a: F.pad(torch.from_numpy(a)[:, None], [2]*4)
    return f(d['x_train']), f(d['x_test'])

def plain_optimizer(model, opts, notes=None):
    "The paper's Adamax (lr 1e-3), as `deepgen.train.Adamax` builds it; PyTorch has no fused Adamax, so it steps with foreach."
    if opts.fused and notes is not None: notes.append(f'torch.optim.Adamax has no fused kernel in PyTorch {torch.__version__}: it steps with foreach=True.')
    return torch.optim.Adamax(model.parameters(), lr=1e-3, foreach=True)

def plain_run(xtr, args, n_threads, device, notes=None):
    "The same Glow, loss and optimiser in a plain PyTorch loop: tensor batches, linear warm-up; returns model, images/s, optimiser."
    torch.set_num_threads(n_threads)
    seed_all(0)
    model = glow_preset('mnist', checkpointing=args.checkpointing).to(device)
    o = args.opts
    if o.channels_last: model = model.to(memory_format=torch.channels_last)
    opt = plain_optimizer(model, o, notes)
    n_warm = args.warmup if isinstance(args.warmup, int) else max(1, min(1000, int(args.warmup * (len(xtr)*0.9 // BS))))
    perm = torch.randperm(len(xtr))
    batch = lambda i: (xtr[perm[i*BS:(i+1)*BS]].to(device, non_blocking=True).float() / 255)
    with torch.no_grad(): model(batch(0))  # data-dependent ActNorm initialisation on the first batch
    model.train()
    if o.compile: model.compile()
    stepper = S.Stepper(device, o.amp)
    skip = min(3, max(0, args.steps - 2)); times = []
    for i in range(args.steps):
        for g in opt.param_groups: g['lr'] = 1e-3 * min(1., (i + 1) / n_warm)
        with S.amp_ctx(device, o.amp): loss = bpd(model(batch(i % (len(xtr) // BS))))
        stepper(loss, opt)
        S.sync(device)
        times.append(time.perf_counter())
    return model, img_per_s(times, skip), opt

def plain_step(opts, device, bs, cfg=CONFIGS['design'], checkpointing=False):
    """Glow's training step for a plain PyTorch loop: `bpd` of the model's output, backward, Adamax, with the speed
    options. Returns what `_speed.speed_run` needs."""
    model = glow_preset(cfg['preset'], checkpointing=checkpointing).to(device)
    if opts.channels_last: model = model.to(memory_format=torch.channels_last)
    x = S.synthetic_batch(cfg['shape'], bs, device, channels_last=opts.channels_last)
    with torch.no_grad(): model(x)   # data-dependent ActNorm initialisation
    notes = []
    opt = plain_optimizer(model, opts, notes)
    step = S.Stepper(device, opts.amp)
    def train_step(x):
        with S.amp_ctx(device, opts.amp): loss = bpd(model(x))
        step(loss, opt)
    return dict(model=model, phases=[('step', train_step, 1)], batch=x, opt_info=S.optimizer_info(opt, notes),
                compile=lambda: model.compile())

def learner_for(dls, opts, cfg):
    "`glow_learner` at configuration `cfg` for the speed run (the options are applied by `_speed.speed_run`)."
    from deepgen.glow_learner import glow_learner
    # the timed steps stay in a long warm-up: what they cost does not depend on the learning rate, and random images at full
    # size with the paper's 1e-3 from the second step on can overflow a model that is not being trained for real
    return glow_learner(dls, preset=cfg['preset'], channels_last=opts.channels_last, sample_every=None, warmup=10_000), {}, None

@torch.no_grad()
def test_bpd(model, xte, n, device, bs=250):
    "Mean bits/dim of `model` on the first `n` MNIST test images (one dequantisation draw each)."
    model.eval(); torch.manual_seed(0); tot = 0.
    x = xte[:n]
    for i in range(0, len(x), bs):
        tot += model(x[i:i+bs].to(device).float() / 255).sum().item()
    return tot / len(x)

@torch.no_grad()
def sample_quality(model, n, temps=(0.7, 1.0), bs=250)->dict:
    """For `n` samples at each temperature: how many are not finite, and how many are finite but leave the data range
    [-1/2, 1/2] of the model's continuous input by more than one bin; `bad_frac` counts both."""
    model.eval(); torch.manual_seed(0); out = {}
    tol = 0.5 + 1 / model.n_bins
    for t in temps:
        nonfin = far = 0
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # `sample` warns about non-finite samples: they are counted here
            for i in range(0, n, bs):
                x = model.sample(min(bs, n - i), temp=t, as_image=False).flatten(1)
                fin = torch.isfinite(x).all(1)
                nonfin += int((~fin).sum()); far += int((fin & (x.abs() > tol).any(1)).sum())
        out[str(t)] = dict(n=n, non_finite=nonfin, out_of_range=far, bad_frac=round((nonfin + far) / n, 4))
    return out

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=None, help='training steps per measurement (the first 3 are not timed; default 100)')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--threads', default='1,all', help="comma-separated thread counts to measure; 'all' = torch's default")
    p.add_argument('--data', default=None, help="path to mnist.npz (Keras layout); default: deepgen.core.find_file('mnist.npz'), "
                                               "which searches $DEEPGEN_DATA and the folders of deepgen.core.data_dirs()")
    p.add_argument('--checkpointing', action='store_true', help='gradient checkpointing per step of flow')
    p.add_argument('--baseline', action='store_true', help='with fastai: also train the same model in the plain PyTorch loop')
    p.add_argument('--warmup', type=float, default=0.1, help='warm-up: fraction of an epoch (<1) or iterations (>=1)')
    p.add_argument('--test-n', type=int, default=1000, help='test images for the bits/dim figure (10000 = all)')
    p.add_argument('--samples', type=int, default=1000, help='samples drawn at each of T = 0.7 and 1.0 after training')
    p.add_argument('--profile', action='store_true', help='print torch.profiler top operators of the timed run to stderr (fastai only)')
    S.add_speed_args(p, CONFIGS, device_default=None, steps=False)
    args = p.parse_args(argv)
    args.opts = S.Options(args, S.check_device(args.device))
    if args.speed:
        torch.set_num_threads(max(thread_list(args.threads)))
        return S.speed_main('glow', args, CONFIGS, learner_for, lambda o, d, bs, c: plain_step(o, d, bs, c, args.checkpointing))
    if args.steps is None: args.steps = 100
    if args.warmup >= 1: args.warmup = int(args.warmup)
    path = Path(args.data) if args.data else find_file('mnist.npz')
    if path is None or not path.exists():
        sys.exit(f"mnist.npz not found ({'at ' + args.data if args.data else 'by deepgen.core.find_file'}): pass --data PATH, "
                 "or time the training step alone on random images with --speed.")
    all_threads = torch.get_num_threads()
    threads = thread_list(args.threads)
    warnings.filterwarnings('ignore')
    device = torch.device(args.device)
    xtr, xte = load_mnist(path)
    res = dict(model='glow', config=dict(preset='mnist', K=8, L=3, hidden=128, affine=True, lu=True, learn_prior=True, arch='official', s_min=0.2,
                                         image='1x32x32', batch=BS, checkpointing=args.checkpointing,
                                         channels_last=args.opts.channels_last, amp=args.opts.amp),
               options=args.opts.as_dict(), device=args.device, cpu=platform.processor() or platform.machine(),
               torch=torch.__version__, steps=args.steps, path='learner' if FASTAI else 'plain')
    if FASTAI:
        res['path_note'] = "glow_learner's training step (fastai, all its callbacks)"
        from deepgen.data import image_dls
        dls = image_dls('mnist', pad=2, bs=BS, path=path, num_workers=0, device=device)
        run = lambda nt, last, notes: fastai_run(dls, args, nt, profile=args.profile and last, notes=notes)
    else:
        res['path_note'] = 'the same model, loss and optimiser in a plain PyTorch loop: fastai is not installed'
        res['skipped'] = 'the fastai Learner (fastai is not installed)'
        run = lambda nt, last, notes: plain_run(xtr, args, nt, device, notes)
    res['img_per_s'], res['baseline_img_per_s'] = {}, ({} if args.baseline and FASTAI else None)
    model, notes, opt = None, [], None
    reset_peak_memory(device)
    for i,nt in enumerate(threads):
        model, ips, opt = run(nt, i == len(threads) - 1, notes)
        res['img_per_s'][str(nt)] = round(ips, 1)
        if res['baseline_img_per_s'] is not None:
            res['baseline_img_per_s'][str(nt)] = round(plain_run(xtr, args, nt, device)[1], 1)
    if res['baseline_img_per_s']:
        res['learner_vs_baseline'] = {k: round(res['img_per_s'][k] / v, 3) for k,v in res['baseline_img_per_s'].items()}
    res['optimizer'] = S.optimizer_info(opt, notes)
    res['params'] = n_params(model)
    # FLOPs of one training step, counted on the same step run eagerly; the fraction of peak for the best images/second
    best = max((v for v in res['img_per_s'].values() if v == v), default=None)
    res['img_per_sec'] = best
    res.update(S.flop_fields(S.plain_flops(plain_step(args.opts.eager(), args.device, BS)), best, BS, args.device, args.opts.amp))
    res['test_images'] = min(args.test_n, len(xte))
    res['test_bpd'] = round(test_bpd(model, xte, args.test_n, args.device), 4)
    res['samples'] = sample_quality(model, args.samples)
    res['samples_note'] = ("after the training steps, per temperature: samples not finite, and finite ones outside the data "
                           "range [-1/2, 1/2] of the model's continuous input by more than one bin; bad_frac counts both")
    res['peak_mem_mib'] = round(peak_memory_mib(device), 1)
    res['threads_all'] = all_threads
    print(json.dumps(res, indent=1))
    return res

def thread_list(spec):
    return [torch.get_num_threads() if t.strip() == 'all' else int(t) for t in spec.split(',')]

if __name__ == '__main__': main()
