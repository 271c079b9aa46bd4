"""NVAE benchmark: the `bench` preset (2 scales x 2 groups, 16 channels) on MNIST padded to 32x32, batch 16.

Prints one JSON object: parameter count, training images/second for each thread count, peak memory of a training
step with and without gradient checkpointing, and the importance-weighted test NLL after a fixed number of steps.

    python benchmarks/nvae.py --steps 2 --iw-samples 4 --iw-images 16      # a dry run: seconds
    python benchmarks/nvae.py --steps 500 --threads 1,all --iw-samples 100 --iw-images 1000 --out nvae.json

The speed options shared by every benchmark (--amp, --channels-last/--no-channels-last, --compile, --fused; see
benchmarks/_speed.py; --precision is the old name of --amp) apply to every Learner here; the JSON also gives the FLOPs of
one training step and, on CUDA, the fraction of the GPU's peak it achieves. `--speed` times the training step alone on
random images, at the `bench` preset (`--config small`) or the paper's CIFAR-10 model (`--config paper`). The Learner
(`--path learner`, with fastai) and the plain PyTorch loop (`--path plain`, torch alone) train with the same loss and
regulariser, `deepgen.nvae.NVAELoss` and the model's `SpectralPenalty`:

    python benchmarks/nvae.py --speed --config paper --device cuda --steps 30
    python benchmarks/nvae.py --speed --device cpu --steps 2     # also runs without fastai (a plain PyTorch loop)
"""
import argparse, json, os, resource, subprocess, sys, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT/'benchmarks'))
import _speed as S

import torch

PRESET = 'bench'
BS = 16
CONFIGS = dict(
    small=dict(preset='bench', shape=(1, 32, 32), bs=16, gpu_steps=100,
                desc='the bench preset: 2 scales x 2 groups, 16 channels (about 1.9M parameters), Bernoulli likelihood; 1x32x32, batch 16'),
    paper=dict(preset='cifar10', shape=(3, 32, 32), bs=32, gpu_steps=30,
               desc="the paper's CIFAR-10 model: 30 groups of 20 latents at 16x16, 128 channels, 2 cells per group, "
                    "mixture of 10 logistics; 3x32x32, batch 32 per GPU (the reference code's)",
               dry=dict(kw=dict(groups=(2,)), bs=2, note='batch 2, and 2 latent groups instead of 30 (a training step of the full model takes a minute on 2 CPU cores)')),
)

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--steps', type=int, default=None, help='training steps before the quality figure (default 200; with --speed: timed steps)')
    p.add_argument('--device', default='cpu', help="'cpu', 'cuda', 'cuda:1', ...")
    p.add_argument('--threads', default='1,all', help="comma-separated CPU thread counts to time ('all' = every core)")
    p.add_argument('--data', default='mnist', help="'mnist' (padded to 32x32), 'digits' (resized to 32x32), or an .npz/folder path")
    p.add_argument('--iw-samples', type=int, default=100, help='importance samples per test image')
    p.add_argument('--iw-images', type=int, default=1000, help='test images for the importance-weighted NLL')
    p.add_argument('--bs', type=int, default=None, help=f'batch size (default {BS}; with --speed: the configuration\'s)')
    p.add_argument('--time-steps', type=int, default=20, help='steps timed for each thread count (after 2 warm-up steps)')
    p.add_argument('--quality-threads', type=int, default=None, help='threads for the quality run (default: the largest of --threads)')
    p.add_argument('--precision', dest='amp', default=argparse.SUPPRESS, choices=['bf16', 'fp16', 'none', 'auto'], help=argparse.SUPPRESS)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--n-flows', type=int, default=0, help='posterior flow cells per latent group (the paper: 2 on CIFAR-10, 4 on CelebA-HQ)')
    p.add_argument('--no-memory', action='store_true', help='skip the checkpointing memory measurement')
    p.add_argument('--out', default=None, help='also write the JSON to this file')
    p.add_argument('--mem-child', default=None, help=argparse.SUPPRESS)
    S.add_speed_args(p, CONFIGS, device_default=None, steps=False)
    return p.parse_args(argv)

def thread_counts(spec):
    return [os.cpu_count() if t.strip() == 'all' else int(t) for t in spec.split(',') if t.strip()]

def dls_for(args, n_items):
    from deepgen.data import image_dls
    kw = dict(bs=args.bs, device=torch.device(args.device), seed=args.seed, max_items=n_items)
    if args.data == 'mnist': return image_dls('mnist', pad=2, **kw)
    if args.data == 'digits': return image_dls('digits', size=32, **kw)
    return image_dls(args.data, size=32, **kw)

def _callbacks():
    "The fastai callbacks of the Learner runs (imported only when fastai is)."
    from fastai.callback.core import Callback, CancelValidException
    class SkipValid(Callback):
        def before_validate(self): raise CancelValidException()
    class Timer(Callback):
        "Seconds per training step, after `skip` warm-up steps."
        order = 100
        def __init__(self, skip=2): self.skip, self.times = skip, []
        def before_batch(self):
            if self.training: self.t0 = time.perf_counter()
        def after_step(self):
            if self.train_iter >= self.skip:
                if self.learn.dls.device.type == 'cuda': torch.cuda.synchronize()
                self.times.append(time.perf_counter() - self.t0)
    return SkipValid, Timer

def make_learner(dls, args, notes=None, **kw):
    from fastai.torch_core import set_seed
    from deepgen.nvae_learner import nvae_learner
    set_seed(args.seed)
    learn = nvae_learner(dls, preset=PRESET, channels_last=args.opts.channels_last, n_flows=args.n_flows, cbs=[_callbacks()[0]()], **kw)
    return S.apply_options(learn, args.opts, notes)  # the whole model compiled: its step is one forward pass

def plain_step(opts, device, bs, cfg=CONFIGS['small']):
    """NVAE's training step in a plain PyTorch loop, with the loss and regulariser `nvae_learner` calls: the negative ELBO
    in bits/dim half-way through the KL warm-up (with KL balancing), the spectral term (lambda 1e-2), and Adamax with
    NVAE's values (lr 1e-2, eps 1e-3, wd 3e-4)."""
    from deepgen.nvae import nvae_preset, NVAELoss
    model = nvae_preset(cfg['preset'], channels_last=opts.channels_last, **cfg.get('kw', {})).to(device)
    x = S.synthetic_batch(cfg['shape'], bs, device, channels_last=opts.channels_last)
    loss_fn = NVAELoss(model.n_dims, model.kl_alpha)
    loss_fn.warm_up(0.15)                                   # half-way through the warm-up, as KLWarmup sets it there
    opt, notes = torch.optim.Adamax(model.parameters(), lr=1e-2, eps=1e-3, weight_decay=3e-4), []
    if opts.fused:
        from deepgen.train import fused_torch_optimizer
        opt, notes = S.fuse_with_notes(lambda: fused_torch_optimizer(opt))
    step = S.Stepper(device, opts.amp)
    def train_step(x):
        with S.amp_ctx(device, opts.amp):
            loss = loss_fn(model(x)) + loss_fn.spectral(model, 1e-2)
        step(loss, opt)
    def compile_model():
        from deepgen.train import compile_modules
        compile_modules(model)
    return dict(model=model, phases=[('step', train_step, 1)], batch=x, opt_info=S.optimizer_info(opt, notes), compile=compile_model)

def learner_for(dls, opts, cfg):
    "`nvae_learner` at configuration `cfg` for the speed run (the options are applied by `_speed.speed_run`)."
    from deepgen.nvae_learner import nvae_learner
    return nvae_learner(dls, preset=cfg['preset'], channels_last=opts.channels_last, cbs=[_callbacks()[0]()], **cfg.get('kw', {})), {}, None

def train_throughput(args, n_threads):
    "Training images/second with `n_threads` CPU threads, over `--time-steps` steps of `nvae_learner`."
    torch.set_num_threads(n_threads)
    n = args.time_steps + 2
    learn = make_learner(dls_for(args, n*args.bs), args)
    timer = _callbacks()[1](skip=2)
    with learn.no_bar(), learn.no_logging(): learn.fit_nvae(1, cbs=timer)
    return round(args.bs*len(timer.times)/sum(timer.times), 2) if timer.times else None

def _rss_mib(): return int(open('/proc/self/statm').read().split()[1])*resource.getpagesize()/2**20

def memory_child(args, checkpoint):
    "Peak memory of training steps (run in a fresh process): CUDA max allocated, or sampled resident memory on a CPU."
    from deepgen.nvae import nvae_preset
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    m = nvae_preset(PRESET, checkpoint=checkpoint, n_flows=args.n_flows).to(dev)
    opt = torch.optim.Adamax(m.parameters(), lr=1e-2, eps=1e-3, weight_decay=3e-4)
    x = ((torch.rand(args.bs, *m.img_shape)*255).round()/255).to(dev)
    peak, on = [0.], [False]
    def probe(*a):
        if on[0]: peak[0] = max(peak[0], _rss_mib())
    def step():
        lp, kl = m(x); loss = (kl.sum(1) - lp).mean()/m.n_dims
        if dev.type == 'cpu': loss.register_hook(probe)     # as the backward pass starts
        loss.backward(); opt.step(); opt.zero_grad()
    step()                                   # allocates the gradients and the optimiser state
    if dev.type == 'cuda':
        torch.cuda.synchronize(); base = torch.cuda.memory_allocated(dev)/2**20; torch.cuda.reset_peak_memory_stats(dev)
        for _ in range(2): step()
        torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated(dev)/2**20; kind = 'cuda max_memory_allocated'
    else:
        # resident memory after every module's forward pass, as the backward pass starts, and every 5 ms in between
        torch.nn.modules.module.register_module_forward_hook(probe)
        def watch():
            while on[0]: probe(); time.sleep(5e-3)
        base = _rss_mib(); peak[0] = base; on[0] = True
        th = threading.Thread(target=watch, daemon=True); th.start()
        for _ in range(2): step()
        on[0] = False; th.join(); peak = max(peak[0], _rss_mib()); kind = 'resident memory (RSS) during training steps'
    print(json.dumps(dict(peak_mib=round(peak, 1), step_mib=round(peak - base, 1), before_step_mib=round(base, 1), kind=kind)))

def peak_memory(args, checkpoint):
    cmd = [sys.executable, __file__, '--mem-child', str(int(checkpoint)), '--device', args.device, '--bs', str(args.bs), '--seed', str(args.seed),
           '--n-flows', str(args.n_flows)]
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])

def train_and_evaluate(args):
    "Train `--steps` steps, then the negative ELBO and the importance-weighted NLL on test images."
    from fastai.torch_core import set_seed
    from deepgen.core import bits_per_dim, n_params
    from deepgen.nvae import iw_nll
    dls = dls_for(args, args.steps*args.bs)
    notes = []
    learn = make_learner(dls, args, notes)
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_nvae(1)
    train_s = time.perf_counter() - t0
    opt_info = S.optimizer_info(learn.opt, notes)
    model = learn.model.eval()
    td = dls_for(args, max(args.iw_images, args.bs))
    xt = torch.cat([b[0] for b in (td.test if td.test is not None else td.valid)])[:args.iw_images]
    set_seed(args.seed)
    t0 = time.perf_counter()
    def nelbo_of(x):
        log_px, kl = model(x)
        return kl.sum(1) - log_px
    with torch.no_grad(): nelbo = torch.cat([nelbo_of(x) for x in xt.split(256)])
    nll = iw_nll(model, xt, k=args.iw_samples, bs=1024)
    D = model.n_dims
    return dict(params=n_params(model), optimizer=opt_info, train_steps=len(dls.train), train_seconds=round(train_s, 1),
                test_images=len(xt), iw_samples=args.iw_samples, eval_seconds=round(time.perf_counter() - t0, 1),
                test_nelbo_nats=round(nelbo.mean().item(), 3), test_nelbo_bpd=round(bits_per_dim(nelbo.mean().item(), D), 4),
                test_iw_nll_nats=round(nll.mean().item(), 3), test_iw_nll_bpd=round(bits_per_dim(nll.mean().item(), D), 4))

def main(argv=None):
    args = parse_args(argv)
    if args.mem_child is not None: return memory_child(args, bool(int(args.mem_child)))
    args.opts = S.Options(args, S.check_device(args.device))
    if args.n_flows:       # flows are an argument of the model: every configuration (and its dry-run reduction) gets them
        for cfg in CONFIGS.values():
            for c in (cfg, cfg.get('dry', {})): c['kw'] = {**c.get('kw', {}), 'n_flows': args.n_flows}
    if args.speed or not S.FASTAI:   # without fastai only the plain PyTorch step can be timed (and no NLL figure)
        torch.set_num_threads(max(thread_counts(args.threads)))
        skipped = {} if args.speed else dict(skipped='the NLL figures, the memory comparison and the fastai Learner need fastai, which is not installed')
        return S.speed_main('nvae', args, CONFIGS, learner_for, plain_step, skipped, out=args.out)
    if args.steps is None: args.steps = 200
    if args.bs is None: args.bs = BS
    from deepgen.nvae import NVAE_PRESETS
    threads = thread_counts(args.threads)
    res = dict(benchmark='nvae', preset=PRESET, n_flows=args.n_flows, config={k: list(v) if isinstance(v, tuple) else v for k,v in NVAE_PRESETS[PRESET].items()},
               data=args.data, batch_size=args.bs, device=args.device, precision=args.opts.amp or 'fp32', options=args.opts.as_dict(),
               torch=torch.__version__, cpu_count=os.cpu_count())
    res['train_img_per_s'] = {str(t): train_throughput(args, t) for t in threads}
    best = max((v for v in res['train_img_per_s'].values() if v), default=None)
    res.update(S.flop_fields(S.plain_flops(plain_step(args.opts.eager(), args.device, args.bs)), best, args.bs, args.device, args.opts.amp))
    if not args.no_memory:
        res['peak_memory_mib'] = {'checkpoint_off': peak_memory(args, False), 'checkpoint_on': peak_memory(args, True)}
    qt = args.quality_threads or max(threads)
    torch.set_num_threads(qt)
    res.update(train_and_evaluate(args))
    res['quality_threads'] = qt
    out = json.dumps(res, indent=1)
    print(out)
    if args.out: Path(args.out).write_text(out + '\n')
    return res

if __name__ == '__main__': main()
