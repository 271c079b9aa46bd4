"""StyleGAN2 benchmark: training throughput, peak memory, parameter counts, the cost of regularising every step
instead of lazily, grouped against non-grouped modulated convolution, and a sample-quality figure after a fixed
number of steps. Prints JSON.

Configuration (the `benchmark` preset of deepgen.stylegan2, at which deepgen was timed against the reference
implementation with the same settings): 32x32, 1 channel, channel_base 2048, channel_max 128, z and w of 128
dimensions, a 2-layer mapping network (G about 1.05M, D about 1.15M parameters), MNIST padded to 32x32, batch 16,
lazy R1 (every 16 steps) and path length (every 4 steps) on.

Images per second are measured over windows of `--steps` training steps (rounded up to a multiple of 16, so a
window holds whole lazy-regularisation intervals: one R1 step per 16, one path length step per 4), after `--warmup`
untimed steps; each measurement takes `--repeats` windows and reports the best (all are in the JSON). The compared
variants (lazy against every-step regularisation, non-grouped against grouped modulated convolution) run in one
process with their windows interleaved, so a change in the machine's load affects them alike. Each thread count runs
in a fresh process, so its peak memory (CPU: the process's peak RSS; CUDA: torch.cuda.max_memory_allocated) is its own.

Quality: FID between generated images (the EMA generator, no truncation) and MNIST test images, computed on the
penultimate-layer features of a small CNN classifier trained on MNIST by `deepgen.metrics.classifier_features`
(not Inception: the figure is labelled with the features' name and is not comparable to published FIDs).

    python benchmarks/stylegan2.py                       # default: 64 steps, threads 1 and all, quality after 64 steps
    python benchmarks/stylegan2.py --steps 16 --quality-steps 320 --samples samples.png   # a longer quality run
    python benchmarks/stylegan2.py --steps 2 --repeats 1 --quality-steps 2 --n-fid 256   # a dry run in a few minutes

The speed options shared by every benchmark (--amp, --channels-last/--no-channels-last, --compile, --fused; see
benchmarks/_speed.py) apply to every Learner here. `--compile` compiles G.mapping, G.synthesis and D in place and runs
them eagerly in the R1 and path-length steps (compiled graphs have no double backward); `--fused` cannot fuse the
Learner's optimiser, fastai's own Adam (it warns and says so in the JSON), while the plain PyTorch loop uses
torch.optim.Adam, fused. The JSON also gives the FLOPs of one training step (R1 and path length weighted by how often
they run) and, on CUDA, the fraction of the GPU's peak it achieves. `--speed` times the training step alone on random
images, at the benchmark configuration (`--config small`) or config F's networks at 256x256 (`--config paper`):

    python benchmarks/stylegan2.py --speed --config paper --device cuda --steps 32
    python benchmarks/stylegan2.py --speed --device cpu --steps 2     # also runs without fastai (a plain PyTorch loop)

The step timed is the one deepgen trains with: `StyleGAN2Learner`'s where fastai is installed, else (or with
`--path plain`) `deepgen.stylegan2_loss.StyleGAN2Step`, which runs the same schedule and losses with torch optimisers.
"""
from __future__ import annotations
import argparse, json, math, os, subprocess, sys, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _speed as S

BS = 16
CONFIGS = dict(
    small=dict(preset='benchmark', kw={}, shape=(1, 32, 32), bs=16, gpu_steps=64,
                desc="the 'benchmark' preset: 32x32, 1 channel, channel base 2048, channel max 128, z and w 128, 2-layer mapping "
                     '(G about 1.05M, D about 1.15M parameters); batch 16; lazy R1 every 16, path length every 4'),
    paper=dict(preset='config-f', kw=dict(size=256), shape=(3, 256, 256), bs=32, gpu_steps=32,
               desc="config F's networks (channel base 32768, channel max 512, 8-layer mapping, z and w 512) at 256x256x3, "
                    "the paper's LSUN setting; batch 32 (the paper's); lazy R1 every 16, path length every 4",
               dry=dict(kw=dict(size=16), shape=(3, 16, 16), bs=2,
                        note='batch 2, and 16x16 instead of 256x256 (a training step at 256x256 takes minutes on 2 CPU cores)')),
)
COMPILE_NAMES = ['G.mapping', 'G.synthesis', 'D']
def _in_reg_step(learn): return str(learn.phase).endswith('_reg')   # R1 and path length differentiate a gradient


def _dls(args):
    from deepgen.data import image_dls
    kw = dict(path=args.data) if args.data else {}
    return image_dls('mnist', pad=2, bs=args.bs, device=args.device, **kw)


def _learner(dls, args, v, notes=None):
    from deepgen.stylegan2_learner import stylegan2_learner
    lazy = v.get('lazy', True)
    learn = stylegan2_learner(dls, 'benchmark', r1_every=16 if lazy else 1, pl_every=4 if lazy else 1,
                              ema_kimg=args.bs * 10 / 32, ema_rampup=0.05)
    learn.model.G.grouped = learn.model.G_ema.grouped = v.get('grouped', False)
    # the three networks its step calls compiled, eager in the R1/path-length steps
    return S.apply_options(learn, args.opts, notes, compile_fn=lambda l: l.to_compiled(COMPILE_NAMES, eager_when=_in_reg_step))


def plain_step(opts, device, bs, cfg=CONFIGS['small']):
    """StyleGAN2's training step for a plain PyTorch loop: `deepgen.stylegan2_loss.StyleGAN2Step`, the schedule and losses
    `StyleGAN2Learner` runs (D, R1 every 16 steps, G with style mixing 0.9, path length every 4 steps on half the batch,
    the EMA of G), with torch.optim.Adam for each network at the lazy-regularisation corrections. Its phases are timed
    one by one (the EMA as a phase of its own)."""
    import torch
    from deepgen.stylegan2 import stylegan2_preset, STYLEGAN2_PRESETS
    from deepgen.stylegan2_loss import StyleGAN2Step, R1, PathLength, lazy_corrections, lazy_adam
    torch.manual_seed(0)
    m = stylegan2_preset(cfg['preset'], **cfg['kw']).to(device)
    if opts.channels_last: m.to(memory_format=torch.channels_last)
    regs = [R1(STYLEGAN2_PRESETS[cfg['preset']].get('r1_gamma', 10.), every=16), PathLength(every=4)]
    c = lazy_corrections(regs)
    kw = dict(fused=True) if opts.fused else {}
    opt_G, opt_D = lazy_adam(m.G.parameters(), c['G'], **kw), lazy_adam(m.D.parameters(), c['D'], **kw)
    step = StyleGAN2Step(m, opt_G, opt_D, regs, autocast=(lambda: S.amp_ctx(device, opts.amp)) if opts.amp else None,
                         backward_step=S.Stepper(device, opts.amp))
    eager = [False]   # compiled graphs have no double backward: the R1 and path-length steps run eagerly
    def reg_step(fn):
        def run(x):
            eager[0] = True
            try: fn(x)
            finally: eager[0] = False
        return run
    phases = [(name, reg_step(fn) if name.endswith('_reg') else fn, every) for name, fn, every in step.phases]
    def compile():
        from deepgen.core import compile_modules
        compile_modules(m, COMPILE_NAMES, eager_when=lambda: eager[0])
    x = S.synthetic_batch(cfg['shape'], bs, device, channels_last=opts.channels_last)
    info = S.optimizer_info(opt_G)
    info['name'] += ' (one for G, one for D)'
    return dict(model=m, phases=phases + [('ema', step.finish, 1)], batch=x, opt_info=info,
                every={name: every for name, _, every in step.phases if every > 1}, compile=compile)


def learner_for(dls, opts, cfg):
    "`stylegan2_learner` at configuration `cfg` for the speed run (the options are applied by `_speed.speed_run`)."
    from deepgen.stylegan2_learner import stylegan2_learner, LazyRegulariser
    learn = stylegan2_learner(dls, cfg['preset'], **cfg['kw'])
    every = {f'{cb.phase}_reg': cb.every for cb in learn.cbs if isinstance(cb, LazyRegulariser)}
    return learn, dict(names=COMPILE_NAMES, eager_when=_in_reg_step), every


def _timed_window(learn, n_steps, warm, dev):
    "Train `warm` untimed then `n_steps` timed steps (one `fit`); return the seconds of the timed steps."
    import torch
    from fastai.callback.core import Callback, CancelFitException
    sync = torch.cuda.synchronize if dev.startswith('cuda') else (lambda: None)
    class Timer(Callback):
        order = 99
        def before_batch(self):
            if self.training and self.train_iter == warm: sync(); self.t0 = time.perf_counter()
        def after_batch(self):
            if self.training and self.train_iter >= warm + n_steps:   # train_iter was just incremented
                sync(); self.secs = time.perf_counter() - self.t0
                raise CancelFitException()
    timer = Timer()
    with learn.no_bar(), learn.no_logging(): learn.fit(math.ceil((warm + n_steps) / len(learn.dls.train)), cbs=timer)
    return timer.secs


def worker(args, cfg):
    """Measure the variants of `cfg` in this process: `rounds` timed windows each, interleaved so that a change in
    the machine's load affects all variants alike; report the best and all rates."""
    import torch
    from fastai.torch_core import set_seed
    from deepgen.core import n_params, peak_memory_mib, reset_peak_memory
    if cfg.get('threads'): torch.set_num_threads(cfg['threads'])
    dev = args.device
    reset_peak_memory(dev)
    set_seed(0)
    dls = _dls(args)
    variants = cfg.get('variants', [dict(name='lazy, non-grouped')])
    notes = []
    learners = [_learner(dls, args, v, notes) for v in variants]
    n_steps = cfg['steps']
    secs = {v['name']: [] for v in variants}
    for r in range(cfg.get('rounds', 1)):
        for v, learn in zip(variants, learners):
            secs[v['name']].append(_timed_window(learn, n_steps, cfg.get('warmup', 0) if r == 0 else 0, dev))
    m = learners[0].model
    out = dict(threads=torch.get_num_threads(), steps=n_steps, peak_mem_mib=peak_memory_mib(dev),
               optimizer=S.optimizer_info(learners[0].opt, notes),
               params_G=n_params(m.G), params_D=n_params(m.D),
               variants={k: dict(img_per_sec=n_steps * args.bs / min(v), img_per_sec_each=[n_steps * args.bs / t for t in v],
                                 sec_per_step=min(v) / n_steps) for k, v in secs.items()})
    if cfg.get('quality'):
        from deepgen.metrics import classifier_features, collect_images, fid_kid
        kw = dict(path=args.data) if args.data else {}
        feats = classifier_features('mnist', pad=2, epochs=1, **kw)
        real = collect_images(dls.test, n=args.n_fid)
        set_seed(1)
        fake = torch.cat([m.sample(min(256, args.n_fid - i)).cpu() for i in range(0, args.n_fid, 256)])
        q = fid_kid(real, fake, feats, kid_subset_size=min(1000, args.n_fid // 2))
        ref = fid_kid(real, collect_images(dls.valid, n=args.n_fid), feats, kid_subset_size=min(1000, args.n_fid // 2))
        out['quality'] = dict(steps=n_steps + cfg.get('warmup', 0), images_seen=int(m.n_img), n_images=args.n_fid,
                              fid=q['fid'], kid=q['kid'], features=q['features'],
                              fid_real_valid_vs_test=ref['fid'],
                              note='FID/KID on the features of a small MNIST classifier (not Inception); '
                                   'fid_real_valid_vs_test is the floor: real validation images against real test images')
        if args.samples:
            from deepgen.core import image_grid
            image_grid(fake[:64], fname=args.samples, show=False)
            out['quality']['samples'] = str(args.samples)
    return out


def run(args, cfg):
    "Run `worker` in a fresh process (own thread count and peak memory)."
    cmd = [sys.executable, __file__, '--_worker', json.dumps(cfg)] + [a for a in sys.argv[1:]]
    env = dict(os.environ)
    if cfg.get('threads'): env['OMP_NUM_THREADS'] = str(cfg['threads'])
    else: env.pop('OMP_NUM_THREADS', None)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise RuntimeError(f"benchmark worker {cfg} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--steps', type=int, default=None, help='timed training steps per window (rounded up to a multiple of 16; default 64)')
    p.add_argument('--warmup', type=int, default=4, help='untimed steps before the first timed window')
    p.add_argument('--repeats', type=int, default=3, help='timed windows per measurement (the best is reported)')
    p.add_argument('--quality-steps', type=int, default=None, help='training steps before the quality figure (default: --steps)')
    p.add_argument('--n-fid', type=int, default=2000, help='images on each side of the FID')
    p.add_argument('--device', default='cuda' if _cuda() else 'cpu')
    p.add_argument('--threads', default='1,all', help="comma-separated thread counts for the throughput runs ('all': every core)")
    p.add_argument('--compare-threads', default='1', help="thread count of the lazy/grouped comparisons and the quality run ('all': every core)")
    p.add_argument('--data', default=None, help='path to mnist.npz (default: deepgen.data searches the usual places)')
    p.add_argument('--bs', type=int, default=None, help=f'batch size (default {BS}; with --speed: the configuration\'s)')
    p.add_argument('--samples', default=None, help='write a grid of 64 samples of the quality run here (PNG)')
    p.add_argument('--skip', default='', help="comma-separated parts to skip: throughput, compare, quality")
    p.add_argument('--out', default=None, help='also write the JSON here')
    p.add_argument('--_worker', default=None, help=argparse.SUPPRESS)
    S.add_speed_args(p, CONFIGS, device_default=None, steps=False)
    args = p.parse_args()
    import torch
    args.opts = S.Options(args, S.check_device(args.device))
    if args.speed or not S.FASTAI:   # without fastai only the plain PyTorch step can be timed (and no FID)
        if args.device == 'cpu': torch.set_num_threads(max(os.cpu_count() if t == 'all' else int(t) for t in args.threads.split(',')))
        skipped = {} if args.speed else dict(skipped='the FID/KID figures, the comparisons and the fastai Learner need fastai, which is not installed')
        S.speed_main('stylegan2', args, CONFIGS, learner_for, plain_step, skipped, out=args.out)
        return
    if args.steps is None: args.steps = 64
    if args.bs is None: args.bs = BS
    if args.data is not None and not Path(args.data).exists():
        p.error(f"--data {args.data}: no such file (give the path of mnist.npz, Keras layout)")
    if args._worker is not None:
        print(json.dumps(worker(args, json.loads(args._worker))))
        return
    steps = math.ceil(args.steps / 16) * 16 if args.steps >= 16 else args.steps
    all_threads = os.cpu_count() if args.device == 'cpu' else None
    threads = [all_threads if t == 'all' else int(t) for t in args.threads.split(',')]
    t = all_threads if args.compare_threads == 'all' else int(args.compare_threads)
    skip = set(filter(None, args.skip.split(',')))
    res = dict(model='StyleGAN2', config=dict(preset='benchmark', size=32, img_channels=1, channel_base=2048, channel_max=128,
                                             z_dim=128, w_dim=128, n_mapping=2, bs=args.bs, r1_every=16, pl_every=4, data='MNIST padded to 32x32'),
               device=args.device, options=args.opts.as_dict(), torch_threads_all=all_threads, timed_steps=steps,
               warmup_steps=args.warmup, repeats=args.repeats)
    base = dict(steps=steps, warmup=args.warmup, rounds=args.repeats)
    if 'throughput' not in skip:
        res['throughput'] = []
        for n in threads:
            r = run(args, dict(base, threads=n))
            v = r['variants']['lazy, non-grouped']
            res['throughput'].append(dict(threads=r['threads'], img_per_sec=v['img_per_sec'], img_per_sec_each=v['img_per_sec_each'],
                                          sec_per_step=v['sec_per_step'], peak_mem_mib=r['peak_mem_mib']))
        res['params_G'], res['params_D'] = r['params_G'], r['params_D']
        res['optimizer'] = r['optimizer']
        best = max(t['img_per_sec'] for t in res['throughput'])
        res.update(S.flop_fields(S.plain_flops(plain_step(args.opts.eager(), args.device, args.bs)), best, args.bs, args.device, args.opts.amp))
    if 'compare' not in skip:
        r = run(args, dict(base, threads=t, variants=[dict(name='lazy, non-grouped'), dict(name='every step', lazy=False),
                                                      dict(name='grouped', grouped=True)]))
        v = r['variants']
        res['compare'] = dict(threads=r['threads'], interleaved=True, variants=v,
                              lazy_speedup_over_every_step=v['lazy, non-grouped']['img_per_sec'] / v['every step']['img_per_sec'],
                              non_grouped_speedup_over_grouped=v['lazy, non-grouped']['img_per_sec'] / v['grouped']['img_per_sec'])
        res.setdefault('params_G', r['params_G']); res.setdefault('params_D', r['params_D'])
    if 'quality' not in skip:
        q = run(args, dict(steps=args.quality_steps or steps, warmup=0, threads=t, quality=True))
        res['quality'] = q['quality']
        res.setdefault('params_G', q['params_G']); res.setdefault('params_D', q['params_D'])
    s = json.dumps(res, indent=1)
    print(s)
    if args.out: Path(args.out).write_text(s)


def _cuda():
    try:
        import torch
        return torch.cuda.is_available()
    except ImportError: return False


if __name__ == '__main__': main()
