"""Glow benchmark: the DESIGN configuration (K=8, L=3, width 128, affine, LU, learned prior) on MNIST padded to 1x32x32, batch 32.

Prints one JSON object: training images/second of `glow_learner` (fastai) with one thread and with all threads,
optionally the same model trained by a bare PyTorch loop (`--baseline`) for comparison, peak memory, parameter
count, and test bits/dim after `--steps` training steps.

    python benchmarks/glow.py --steps 200                 # images/s (1 thread and all) + test bpd after 200 steps
    python benchmarks/glow.py --steps 100 --baseline      # also the bare PyTorch loop, same model and optimiser
    python benchmarks/glow.py --steps 2 --test-n 64       # a dry run in seconds
    python benchmarks/glow.py --steps 20 --profile        # also print torch.profiler's top operators (stderr)
    python benchmarks/glow.py --steps 100 --amp bf16      # mixed precision (coupling networks in bf16)

The speed options shared by every benchmark (--amp, --channels-last/--no-channels-last, --compile, --fused; see
benchmarks/_speed.py) apply to both training loops; the JSON also gives the FLOPs of one training step and, on CUDA,
the fraction of the GPU's peak the step achieves. `--speed` times the training step alone on random images, at the
DESIGN configuration (`--config design`) or the paper's CIFAR-10 model (`--config paper`), as benchmarks/gpu.sh does:

    python benchmarks/glow.py --speed --config paper --device cuda --steps 50
    python benchmarks/glow.py --speed --device cpu --steps 2    # also runs without fastai (a plain PyTorch loop)
"""
from __future__ import annotations
import argparse, json, math, os, platform, resource, sys, time, warnings
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _speed as S   # first: puts stand-ins for fastai & co in place when they are not installed (see _bare.py)
from deepgen.core import n_params, set_seed
from deepgen.glow import glow_preset, Glow, ActNorm
from deepgen.train import compile_modules, fused_torch_optimizer

BS = 32
CONFIGS = dict(
    design=dict(preset='mnist', shape=(1, 32, 32), bs=32, gpu_steps=100,
                desc='DESIGN.md: K=8, L=3, width 128, affine, LU, learned prior; 1x32x32 (MNIST padded), batch 32'),
    paper=dict(preset='cifar10', shape=(3, 32, 32), bs=64, gpu_steps=50,
               desc="the paper's CIFAR-10 model: K=32, L=3, width 512, affine, LU, learned prior (44.6M parameters); "
                    "3x32x32, batch 64 (the reference code's default)",
               dry=dict(bs=2, note='batch 2')),
)

def default_data():
    "The first mnist.npz found in the usual places."
    here = Path(__file__).resolve().parents[1]
    for p in (Path('/work/shared/data/mnist.npz'), here.parent/'shared/data/mnist.npz', Path('../shared/data/mnist.npz')):
        if p.exists(): return p
    return None

def step_timer(steps, skip):
    "A callback timing training steps after `skip` warm-up steps, stopping the fit after `steps` steps (no validation)."
    from fastai.callback.core import Callback, CancelFitException
    class StepTimer(Callback):
        order = 100
        def __init__(self): self.times = []
        def after_batch(self):
            if not self.training: return
            self.times.append(time.perf_counter())
            if len(self.times) >= steps: raise CancelFitException()
    return StepTimer()

def img_per_s(times, skip, bs=BS):
    "Images per second over the steps after the first `skip` (the first steps build kernels and caches)."
    t = times[skip:] if len(times) > skip + 1 else times
    return (len(t) - 1) * bs / (t[-1] - t[0]) if len(t) > 1 else float('nan')

def fastai_run(dls, args, n_threads, profile=False, notes=None):
    "Train with `glow_learner` for `args.steps` steps; return the Learner and its images/s."
    from deepgen.glow import glow_learner
    torch.set_num_threads(n_threads)
    set_seed(0)
    learn = glow_learner(dls, preset='mnist', checkpointing=args.checkpointing, channels_last=args.opts.channels_last,
                         warmup=args.warmup, sample_every=None)
    S.apply_options(learn, args.opts, notes)  # the whole model compiled: its step is one forward pass
    skip = min(3, max(0, args.steps - 2))
    timer = step_timer(args.steps, skip)
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
    o = args.opts
    if o.channels_last: model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adamax(model.parameters(), lr=1e-3, foreach=True)
    if o.fused: opt, _ = S.fuse_with_notes(lambda: fused_torch_optimizer(opt))
    n_warm = args.warmup if isinstance(args.warmup, int) else max(1, min(1000, int(args.warmup * (len(xtr)*0.9 // BS))))
    perm = torch.randperm(len(xtr))
    batch = lambda i: (xtr[perm[i*BS:(i+1)*BS]].to(device, non_blocking=True).float() / 255)
    with torch.no_grad(): model(batch(0))  # data-dependent ActNorm init on the first batch
    model.train()
    if o.compile: compile_modules(model)
    scaler = torch.amp.GradScaler(device) if o.amp == 'fp16' else None
    skip = min(3, max(0, args.steps - 2)); times = []
    for i in range(args.steps):
        for g in opt.param_groups: g['lr'] = 1e-3 * min(1., (i + 1) / n_warm)
        with S.amp_ctx(device, o.amp):
            loss = model(batch(i % (len(xtr) // BS))).mean()
        opt.zero_grad(set_to_none=True)
        if scaler is None: loss.backward(); opt.step()
        else: scaler.scale(loss).backward(); scaler.step(opt); scaler.update()
        S.sync(device)
        times.append(time.perf_counter())
    return model, img_per_s(times, skip)

def plain_step(opts, device, bs, cfg=CONFIGS['design'], checkpointing=False):
    """Glow's training step for a plain PyTorch loop: bits/dim of a batch, backward, Adamax (the paper's, lr 1e-3),
    with the speed options. Returns what `_speed.speed_run` needs."""
    model = glow_preset(cfg['preset'], checkpointing=checkpointing).to(device)
    if opts.channels_last: model = model.to(memory_format=torch.channels_last)
    x = S.synthetic_batch(cfg['shape'], bs, device, channels_last=opts.channels_last)
    with torch.no_grad(): model(x)   # data-dependent ActNorm init
    opt, notes = torch.optim.Adamax(model.parameters(), lr=1e-3, foreach=True), []
    if opts.fused: opt, notes = S.fuse_with_notes(lambda: fused_torch_optimizer(opt))
    step = S.Stepper(device, opts.amp)
    def train_step(x):
        with S.amp_ctx(device, opts.amp): loss = model(x).mean()
        step(loss, opt)
    return dict(model=model, phases=[('step', train_step, 1)], batch=x, opt_info=S.optimizer_info(opt, notes),
                compile=lambda: compile_modules(model))

def learner_for(dls, opts, cfg):
    "`glow_learner` at configuration `cfg` for the speed run (the options are applied by `_speed.speed_run`)."
    from deepgen.glow import glow_learner
    return glow_learner(dls, preset=cfg['preset'], channels_last=opts.channels_last, sample_every=None), {}, None

@torch.no_grad()
def test_bpd(model, xte, n, device, bs=250):
    "Mean bits/dim of `model` on the first `n` MNIST test images (one dequantisation draw each)."
    model.eval(); torch.manual_seed(0); tot = 0.
    x = xte[:n]
    for i in range(0, len(x), bs):
        tot += model(x[i:i+bs].to(device).float() / 255).sum().item()
    return tot / len(x)

def peak_mem_mib(device):
    if torch.device(device).type == 'cuda': return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # Linux: KiB

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=None, help='training steps per measurement (the first 3 are not timed; default 100)')
    p.add_argument('--device', default='cpu', help='cpu or cuda')
    p.add_argument('--threads', default='1,all', help="comma-separated thread counts to measure; 'all' = torch's default")
    p.add_argument('--data', default=None, help='path to mnist.npz (default /work/shared/data/mnist.npz or ../shared/data)')
    p.add_argument('--checkpointing', action='store_true', help='gradient checkpointing per step of flow')
    p.add_argument('--baseline', action='store_true', help='also train the same model with a bare PyTorch loop')
    p.add_argument('--warmup', type=float, default=0.1, help='warm-up: fraction of an epoch (<1) or iterations (>=1)')
    p.add_argument('--test-n', type=int, default=1000, help='test images for the bits/dim figure (10000 = all)')
    p.add_argument('--profile', action='store_true', help='print torch.profiler top operators of the fastai run to stderr')
    S.add_speed_args(p, CONFIGS, device_default=None, steps=False)
    args = p.parse_args(argv)
    args.opts = S.Options(args, S.check_device(args.device))
    if args.speed or not S.FASTAI:   # without fastai only the plain PyTorch step can be timed (and no bits/dim figure)
        torch.set_num_threads(max(thread_list(args.threads)))
        skipped = {} if args.speed else dict(skipped='the bits/dim figure and the fastai Learner need fastai, which is not installed')
        return S.speed_main('glow', args, CONFIGS, learner_for, lambda o, d, bs, c: plain_step(o, d, bs, c, args.checkpointing), skipped)
    if args.steps is None: args.steps = 100
    if args.warmup >= 1: args.warmup = int(args.warmup)
    path = Path(args.data) if args.data else default_data()
    if path is None or not Path(path).exists(): sys.exit(f"mnist.npz not found (looked at {args.data or 'the default places'}): pass --data PATH.")
    all_threads = torch.get_num_threads()
    threads = thread_list(args.threads)
    warnings.filterwarnings('ignore')

    from deepgen.data import image_dls
    dls = image_dls('mnist', pad=2, bs=BS, path=path, num_workers=0, device=torch.device(args.device))
    xtr, xte = load_mnist(path)
    res = dict(model='glow', config=dict(preset='mnist', K=8, L=3, hidden=128, affine=True, lu=True, learn_prior=True,
                                         image='1x32x32', batch=BS, checkpointing=args.checkpointing,
                                         channels_last=args.opts.channels_last, amp=args.opts.amp),
               options=args.opts.as_dict(),
               device=args.device, cpu=platform.processor() or platform.machine(), torch=torch.__version__,
               steps=args.steps, fastai_img_per_s={}, baseline_img_per_s={} if args.baseline else None)
    learn, notes = None, []
    for i,nt in enumerate(threads):
        learn, ips = fastai_run(dls, args, nt, profile=args.profile and i == len(threads) - 1, notes=notes)
        res['fastai_img_per_s'][str(nt)] = round(ips, 1)
        if args.baseline:
            _, ips_b = baseline_run(xtr, args, nt, args.device)
            res['baseline_img_per_s'][str(nt)] = round(ips_b, 1)
    if args.baseline:
        res['fastai_vs_baseline'] = {k: round(res['fastai_img_per_s'][k] / v, 3) for k,v in res['baseline_img_per_s'].items()}
    res['optimizer'] = S.optimizer_info(learn.opt, notes)
    res['params'] = n_params(learn.model)
    # FLOPs of one training step, counted on the same step run eagerly; the fraction of peak for the best images/second
    best = max((v for v in res['fastai_img_per_s'].values() if v == v), default=None)
    res.update(S.flop_fields(S.plain_flops(plain_step(args.opts.eager(), args.device, BS)), best, BS, args.device, args.opts.amp))
    res['test_images'] = min(args.test_n, len(xte))
    res['test_bpd'] = round(test_bpd(learn.model, xte, args.test_n, args.device), 4)
    res['peak_mem_mib'] = round(peak_mem_mib(args.device), 1)
    res['threads_all'] = all_threads
    print(json.dumps(res, indent=1))
    return res

def thread_list(spec):
    return [torch.get_num_threads() if t.strip() == 'all' else int(t) for t in spec.split(',')]

if __name__ == '__main__': main()
