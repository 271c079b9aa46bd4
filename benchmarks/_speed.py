"""What the three benchmark scripts share: the speed options, FLOP counting, the GPU peak table, and the timed loops.

Every benchmark (glow.py, nvae.py, stylegan2.py) takes the same speed options

    --amp {bf16,fp16,none,auto}    mixed precision (auto: bf16 on a CUDA GPU that has it, none elsewhere)
    --channels-last / --no-channels-last   weights and input batches in NHWC order (default on)
    --compile / --no-compile       torch.compile of the networks, in place (default off)
    --fused / --no-fused           fused optimiser kernel where PyTorch has one (default: on with CUDA, off on a CPU)
    --device, --steps

and `--speed` times the training step only, at a configuration given by `--config small|paper` (the small
configuration that `deepgen compare` trains at 32x32, or the paper's), on random images (no data set needed), printing
one JSON object. The options map onto `deepgen.train`'s Learner methods (`to_amp`, `to_channels_last`, `to_compiled`,
`to_fused`) when fastai is installed, and onto the same functions (`compile_modules`, `fused_torch_optimizer`) in a
plain PyTorch loop when it is not: this module imports torch and deepgen's torch-only models layer at the top, and
fastai (through deepgen's Learners) only on the Learner path.

Why these defaults. On a GPU they rest on documented facts until benchmarks/gpu.sh has run on one (`--sweep` measures
each switch on the small configurations); on a CPU on measurements (`--speed --device cpu --threads 1 --steps 20`,
one core of a 2-core AVX-512-BF16 machine without AMX, shared with other jobs; ratios of runs made back to back):
- amp: bf16 on CUDA, where tensor cores run bf16 at 15-16 times float32's dense rate (H100/H200, A100 datasheets) and
  bf16 needs no loss scaling. None on a CPU: it depends on the CPU. Here bf16 made Glow 1.7x and StyleGAN2 1.4x
  faster but NVAE 0.9x; a CPU without bf16 instructions emulates it and is slower; and results change with it.
- channels-last on: cuDNN's tensor-core convolutions are NHWC kernels; on the CPU NVAE (depthwise convolutions) ran
  1.47x faster with it, Glow and StyleGAN2 the same (0.96x and 1.02x without).
- fused on with CUDA, off on a CPU: on a GPU one kernel updates every parameter instead of several launches per
  parameter tensor, which is what a small model's optimiser step is made of; on the CPU fused Adam changed nothing
  (StyleGAN2's plain loop: 0.93-0.98x). Adamax (Glow, NVAE) has no fused kernel and steps with foreach instead;
  StyleGAN2's Learner uses fastai's own Adam, which has none (its plain loop uses torch.optim.Adam, fused).
- compile off: compiling took 2 to 4.5 minutes per model on the CPU (Glow 143 s, StyleGAN2 123 s, NVAE 269 s, cold
  cache) for +8% (Glow), +6% (NVAE) and -22% (StyleGAN2, whose step calls its networks in several modes: with and
  without gradients, `requires_grad` switched per phase, with and without style mixing, so they compile several
  times; its R1 and path-length steps run eagerly, as compiled graphs have no double backward). Compiling is CPU work on a GPU machine too, so it would take most of gpu.sh's 8-minute budget; on a GPU
  its fusion of element-wise chains pays more, which `--compile` (and `gpu.sh --sweep`) measures.
"""
from __future__ import annotations
import argparse, importlib.util, json, math, platform, re, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(ROOT/'benchmarks')):
    if _p not in sys.path: sys.path.insert(0, _p)
import torch
from deepgen.core import n_params, peak_memory_mib, reset_peak_memory

def _importable(name:str)->bool:
    "Whether `import name` would find the package, without importing it (fastai takes seconds to import)."
    try: return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError): return False   # blocked, or a `sys.modules[name] = None` entry

FASTAI = _importable('fastai')   # the Learner path needs it; the plain path needs torch and the models alone

# ---- GPU peaks -----------------------------------------------------------------------------------------------
# Peak dense throughput in TFLOP/s (no 2:4 sparsity), from NVIDIA's product datasheets (H100, H200, A100, L4, L40,
# L40S, A10, T4, V100) and, for GeForce cards, the architecture whitepapers (Ada: RTX 4090; Ampere GA102: RTX 3090),
# fp16/bf16 with fp32 accumulation. The datasheets quote tensor-core figures with sparsity: dense is half of those.
# The first pattern that matches `torch.cuda.get_device_name()` wins; an unknown GPU gets null.
GPU_PEAK_TFLOPS = [
    (r'H100.*PCIe',            dict(bf16=756, fp16=756, tf32=378, fp32=51)),
    (r'H[12]00.*NVL',          dict(bf16=835, fp16=835, tf32=418, fp32=60)),
    (r'\bH100\b|\bH200\b|\bGH200\b', dict(bf16=989, fp16=989, tf32=495, fp32=67)),   # SXM
    (r'A100',                  dict(bf16=312, fp16=312, tf32=156, fp32=19.5)),
    (r'\bL40S\b',              dict(bf16=362, fp16=362, tf32=183, fp32=91.6)),
    (r'\bL40\b',               dict(bf16=181, fp16=181, tf32=90.5, fp32=90.5)),
    (r'\bL4\b',                dict(bf16=121, fp16=121, tf32=60, fp32=30.3)),
    (r'\bA10\b',               dict(bf16=125, fp16=125, tf32=62.5, fp32=31.2)),
    (r'RTX 4090',              dict(bf16=165.2, fp16=165.2, tf32=82.6, fp32=82.6)),
    (r'RTX 3090',              dict(bf16=71, fp16=71, tf32=35.6, fp32=35.6)),
    (r'V100.*PCIE',            dict(bf16=None, fp16=112, tf32=None, fp32=14)),
    (r'V100',                  dict(bf16=None, fp16=125, tf32=None, fp32=15.7)),
    (r'\bT4\b',                dict(bf16=None, fp16=65, tf32=None, fp32=8.1)),
]

def gpu_peak(name:str)->dict|None:
    "Peak dense TFLOP/s by precision for the GPU called `name`, or None when it is not in the table."
    for pat, peaks in GPU_PEAK_TFLOPS:
        if re.search(pat, name, re.I): return dict(peaks)
    return None

def peak_basis(amp:str|None)->str:
    "The precision whose peak the step is measured against: the autocast dtype, else TF32 when cuDNN may use it."
    if amp: return amp
    return 'tf32' if torch.backends.cudnn.allow_tf32 else 'fp32'

# ---- options -------------------------------------------------------------------------------------------------

def add_speed_args(p:argparse.ArgumentParser, configs:dict, device_default='cpu', steps=True):
    "Add the options every benchmark shares (`--steps` only when the script has none of its own)."
    g = p.add_argument_group('speed options (the same in every benchmark)')
    g.add_argument('--amp', default='auto', choices=['bf16', 'fp16', 'none', 'auto'],
                   help='mixed precision: bf16, fp16 (with loss scaling), none; auto = bf16 on a CUDA GPU that has it, else none')
    g.add_argument('--channels-last', default=True, action=argparse.BooleanOptionalAction,
                   help='weights and input batches in channels-last (NHWC) memory format')
    g.add_argument('--compile', default=False, action=argparse.BooleanOptionalAction,
                   help='torch.compile the networks in place (the first steps compile; R1/path length stay eager)')
    g.add_argument('--fused', default=None, action=argparse.BooleanOptionalAction,
                   help='fused optimiser kernel where PyTorch has one, else foreach (default: on with CUDA, off on a CPU)')
    if device_default is not None: g.add_argument('--device', default=device_default, help="'cpu', 'cuda', 'cuda:1', ...")
    if steps: g.add_argument('--steps', type=int, default=None, help='timed training steps')
    g.add_argument('--speed', action='store_true', help='time the training step only (no data set, no quality figure), at --config')
    def config_list(v):
        bad = [c for c in v.split(',') if config_of(configs, c) is None]
        if bad: raise argparse.ArgumentTypeError(f"unknown configuration {bad[0]!r}: choose from {', '.join(configs)} (comma-separated for several)")
        return v
    g.add_argument('--config', default='small', type=config_list,
                   help='with --speed, comma-separated for several in one process: ' + '; '.join(f"{k}: {v['desc']}" for k, v in configs.items()))
    if '--bs' not in p._option_string_actions:
        g.add_argument('--bs', type=int, default=None, help='batch size (default: the configuration\'s)')
    g.add_argument('--warmup-steps', type=int, default=None, help='untimed steps before the timed ones (default: 1 for a run of <= 4 steps, else 5)')
    g.add_argument('--time-budget', type=float, default=None, help='stop timing after this many seconds (at least 2 timed steps)')
    g.add_argument('--dry-run', action='store_true',
                   help="with --speed: a quick check of the code path on a CPU; a configuration too big for that (see its 'dry' entry) is reduced, and says so")
    g.add_argument('--path', default='auto', choices=['auto', 'learner', 'plain'],
                   help="speed mode: time the fastai Learner's step, or the same step in a plain PyTorch loop (auto: the Learner when fastai is installed)")
    return p

OLD_NAMES = dict(small='design')   # the small configuration's former name, accepted from either side for one release

def config_of(configs:dict, name:str)->dict|None:
    "The configuration called `name` in a benchmark's `configs` (under its current or its former name), or `None`."
    if name in configs: return configs[name]
    alias = OLD_NAMES.get(name) or next((k for k,v in OLD_NAMES.items() if v == name), None)
    return configs.get(alias)

class Options:
    "The speed options resolved for a device: amp (None/'bf16'/'fp16'), channels_last, compile, fused."
    def __init__(self, args, device):
        device = torch.device(device)
        amp = args.amp
        if amp == 'auto': amp = 'bf16' if device.type == 'cuda' and torch.cuda.is_bf16_supported() else 'none'
        self.amp = None if amp == 'none' else amp
        self.channels_last = bool(args.channels_last)
        self.compile = bool(args.compile)
        self.fused = (device.type == 'cuda') if args.fused is None else bool(args.fused)
    def as_dict(self): return dict(amp=self.amp or 'fp32', channels_last=self.channels_last, compile=self.compile, fused=self.fused)
    def eager(self)->'Options':
        "The same options without compiling or fusing (for counting FLOPs: a compiled step hides its operations)."
        o = object.__new__(Options); o.__dict__.update(self.__dict__, compile=False, fused=False)
        return o

def check_device(device:str):
    d = torch.device(device)
    if d.type == 'cuda' and not torch.cuda.is_available(): sys.exit(f'--device {device} but no CUDA device is available.')
    return d

# ---- measurements --------------------------------------------------------------------------------------------

def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize(device)

def peak_mem(device)->tuple[float, str]:
    "Peak memory in MiB (`deepgen.core.peak_memory_mib`) and what it is."
    kind = ('torch.cuda.max_memory_allocated during the measured steps' if torch.device(device).type == 'cuda'
            else 'peak resident memory of the process (CPU)')
    return peak_memory_mib(device), kind

class _GlobalOnly:
    """Stand-in for `FlopCounterMode`'s per-module tracker, which counts everything under 'Global' only. The tracker's
    module hooks break `torch.autograd.grad` with a leaf input (R1 differentiates D with respect to the images)."""
    parents = ('Global',)
    def __enter__(self): return self
    def __exit__(self, *args): pass

def _conv_backward_flop(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed, _output_padding,
                        _groups, output_mask, out_shape=None)->int:
    """FLOPs of a convolution's backward: each of the input and weight gradients costs what the forward does. (PyTorch's own
    formula ignores `groups` and counts a depthwise convolution's backward `groups` times over: NVAE's cells have them.)"""
    from torch.utils.flop_counter import conv_flop_count
    fwd = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed=transposed)
    return fwd * (int(bool(output_mask[0])) + int(bool(output_mask[1])))

def flop_counter():
    "A `FlopCounterMode` that prints nothing and keeps totals only (matrix products and convolutions, forward and backward)."
    from torch.utils.flop_counter import FlopCounterMode
    fc = FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flop})
    if hasattr(fc, 'mod_tracker'): fc.mod_tracker = _GlobalOnly()
    return fc

FLOP_NOTE = ('torch.utils.flop_counter.FlopCounterMode over one training step, forward and backward (matrix products '
             'and convolutions; element-wise work is not counted); lazy regularisation steps weighted by how often they run')

def amp_ctx(device, amp):
    "An autocast context for `amp` ('bf16', 'fp16' or None) on `device`."
    dt = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp, torch.float32)
    return torch.autocast(torch.device(device).type, dtype=dt, enabled=amp is not None)

class Stepper:
    "backward + optimiser step + zero_grad, with a GradScaler for fp16."
    def __init__(self, device, amp):
        self.scaler = torch.amp.GradScaler(torch.device(device).type) if amp == 'fp16' else None
    def __call__(self, loss, opt):
        if self.scaler is None: loss.backward(); opt.step()
        else: self.scaler.scale(loss).backward(); self.scaler.step(opt); self.scaler.update()
        opt.zero_grad(set_to_none=True)

def optimizer_info(opt, notes=())->dict:
    "Which optimiser steps, and whether with a fused kernel or foreach."
    inner = getattr(opt, 'opt', opt)
    if isinstance(inner, torch.optim.Optimizer):
        d = dict(name=f'torch.optim.{type(inner).__name__}', fused=bool(inner.defaults.get('fused')), foreach=inner.defaults.get('foreach'))
    else:
        inner = getattr(inner, 'opt', inner)
        names = [getattr(getattr(cb, 'func', cb), '__name__', '?') for cb in getattr(inner, 'cbs', [])]
        d = dict(name=f"fastai {type(inner).__name__} ({', '.join(names)})" if names else type(inner).__name__, fused=False, foreach=False)
    if notes: d['note'] = ' '.join(dict.fromkeys(notes))
    return d

def fuse_with_notes(fn):
    "Run `fn()` (a `to_fused`/`fused_torch_optimizer` call), returning its result and the warnings it gave as notes."
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        r = fn()
    return r, [str(w.message) for w in ws]

def apply_options(learn, opts, notes=None, compile_fn=None):
    "The speed options `opts` on a Learner: autocast, channels_last, a fused optimiser (what could not be fused goes to `notes`), and `compile_fn(learn)` (`learn.to_compiled()` by default)."
    if opts.amp: learn.to_amp(opts.amp)
    if opts.channels_last: learn.to_channels_last()
    if opts.fused:
        _, n = fuse_with_notes(learn.to_fused)
        if notes is not None: notes += n
    if opts.compile: (compile_fn or (lambda l: l.to_compiled()))(learn)
    return learn

def _stop(n_timed, steps, elapsed, budget):
    return n_timed >= steps or (budget is not None and n_timed >= 2 and elapsed >= budget)

def plain_measure(phases, batch, device, steps, warmup, budget=None, before_timing=None)->dict:
    """Time a plain PyTorch training loop. `phases`: [(name, fn(x), every)]; step i runs the phases with i % every == 0.
    Step 0 counts the FLOPs of each phase (eagerly) and is the first warm-up step; with `before_timing` (e.g. compiling)
    it is called after step 0 and `warmup` more steps run untimed."""
    flops = {}
    for name, fn, every in phases:
        fc = flop_counter()
        with fc: fn(batch)
        flops[name] = fc.get_total_flops()
    if before_timing is not None: before_timing()
    first_timed = warmup + 1 if before_timing is not None else max(1, warmup)
    sync(device); reset_peak_memory(device)
    t_start = time.perf_counter()
    times, ran, i = [], [], 1
    while True:
        sync(device); t0 = time.perf_counter()
        names = []
        for name, fn, every in phases:
            if i % every == 0: fn(batch); names.append(name)
        sync(device); t1 = time.perf_counter()
        if i >= first_timed:
            times.append(t1 - t0); ran.append(names)
            if _stop(len(times), steps, sum(times), budget): break
        i += 1
    return dict(times=times, ran=ran, flops=flops, warmup_seconds=time.perf_counter() - t_start - sum(times))

def learner_measure(learn, device, steps, warmup, budget=None, before_timing=None, st=None)->dict:
    """Time `learn`'s training steps (from the first `before_batch` to the last `after_batch` of each batch, data loading
    excluded). The first step counts FLOPs per phase (`learn.phase` for multi-phase steps such as StyleGAN2's) and is the
    first warm-up step; with `before_timing` (e.g. compiling) that step is a fit of its own, `before_timing()` runs after
    it, and `warmup` steps of the timed fit run untimed."""
    from fastai.callback.core import Callback, CancelFitException
    st = {} if st is None else st
    st.update(times=[], ran=[], flops={}, counting=False, n=0, count_next=True, separate=before_timing is not None)
    first_timed = warmup if before_timing is not None else max(1, warmup)

    class _Start(Callback):
        order = -1000
        def before_batch(self):
            if not self.training: return
            if st['count_next']:
                st['fc'] = flop_counter(); st['fc'].__enter__(); st['last'] = 0; st['counting'] = True
            sync(device); st['t0'] = time.perf_counter(); st['phases'] = []

    class _End(Callback):
        order = 1000
        def _mark(self):
            ph = getattr(self.learn, 'phase', None) or 'step'
            st['phases'].append(ph)
            if st['counting']:
                tot = st['fc'].get_total_flops(); st['flops'][ph] = st['flops'].get(ph, 0) + tot - st['last']; st['last'] = tot
        def after_step(self):
            if self.training: self._mark()
        def after_cancel_step(self):
            if self.training: self._mark()
        def after_batch(self):
            if not self.training: return
            sync(device); t1 = time.perf_counter()
            if st['counting']:
                st['fc'].__exit__(None, None, None); st['counting'] = st['count_next'] = False
                if st['separate']: raise CancelFitException()
            elif st['n'] >= first_timed:
                st['times'].append(t1 - st['t0']); st['ran'].append(st['phases'])
                if _stop(len(st['times']), steps, sum(st['times']), budget): raise CancelFitException()
            st['n'] += 1

    cbs = [_Start(), _End()]
    n_ep = lambda: max(1, math.ceil((warmup + steps + 2) / max(1, len(learn.dls.train))))
    with learn.no_bar(), learn.no_logging():
        if before_timing is not None:
            learn.fit(1, cbs=cbs)
            before_timing()
            st['n'] = 0
        sync(device); reset_peak_memory(device)
        t_start = time.perf_counter()
        learn.fit(n_ep(), cbs=cbs)
    st['warmup_seconds'] = time.perf_counter() - t_start - sum(st['times'])
    return st

def summarise(m:dict, bs:int, device, amp:str|None, every:dict|None=None)->dict:
    "img/s, seconds per step, FLOPs per step (amortised over lazy phases), achieved TFLOP/s and the fraction of the GPU's peak."
    every = every or {}
    flops = m['flops']
    per_step = sum(f / every.get(ph, 1) for ph, f in flops.items())
    times = m['times']
    secs = sum(times)
    window_flops = sum(flops.get(ph, 0) for names in m['ran'] for ph in names)   # what the timed steps really ran
    out = dict(timed_steps=len(times), img_per_sec=round(bs * len(times) / secs, 2) if secs else None,
               sec_per_step=round(secs / len(times), 5) if times else None,
               warmup_seconds=round(m.get('warmup_seconds') or 0, 2),
               flops_per_step=int(per_step), flops_per_phase={k: int(v) for k, v in flops.items() if v} if len(flops) > 1 else None,
               flop_count=FLOP_NOTE)
    if any(v > 1 for v in every.values()): out['phase_every'] = every
    achieved = window_flops / secs / 1e12 if secs else None
    out['achieved_tflops'] = round(achieved, 4) if achieved is not None else None
    out.update(_peak_fields(device, amp, achieved))
    mem, kind = peak_mem(device)
    out.update(peak_mem_mib=round(mem, 1), peak_mem_kind=kind)
    return out

def _peak_fields(device, amp, achieved)->dict:
    d = torch.device(device)
    if d.type != 'cuda':
        return dict(device_name=platform.processor() or platform.machine(), peak_tflops=None, frac_of_peak=None,
                    peak_note='the fraction of peak is reported on CUDA only')
    name = torch.cuda.get_device_name(d)
    peaks, basis = gpu_peak(name), peak_basis(amp)
    return dict(device_name=name, peak_tflops=peaks, peak_basis=basis,
                frac_of_peak=round(achieved / peaks[basis], 5) if peaks and peaks.get(basis) and achieved else None)

def frac_from_rate(flops_per_step:float, img_per_sec:float|None, bs:int, device, amp)->dict:
    "Achieved TFLOP/s and the fraction of the GPU's peak from a measured images/second (for the full benchmark modes)."
    ach = flops_per_step * img_per_sec / bs / 1e12 if img_per_sec else None
    return dict(achieved_tflops=round(ach, 4) if ach is not None else None, **_peak_fields(device, amp, ach))

def plain_flops(p:dict)->int:
    "FLOPs per step of the plain step `p` (as `plain_fn` returns it), each phase run once and weighted by 1/every."
    tot = 0.
    for name, fn, every in p['phases']:
        fc = flop_counter()
        with fc: fn(p['batch'])
        tot += fc.get_total_flops() / every
    return int(tot)

def flop_fields(flops_per_step:int, img_per_sec, bs:int, device, amp)->dict:
    "The FLOP and peak-fraction fields of a full benchmark's JSON, for its best images/second."
    out = dict(flops_per_step=flops_per_step, flop_count=FLOP_NOTE)
    out.update(frac_from_rate(flops_per_step, img_per_sec, bs, device, amp))
    return out

class _Done(Exception): pass
def _raise_done(): raise _Done()

def learner_flops(learn, device)->dict:
    "FLOPs per phase of one training step of `learn` (which it runs)."
    st = {}
    try: learner_measure(learn, device, steps=0, warmup=0, before_timing=_raise_done, st=st)
    except _Done: pass
    return st['flops']

# ---- synthetic data ------------------------------------------------------------------------------------------
# The Learner path's DataLoaders of random images are `deepgen.compare.synthetic_dls` (imported there, with fastai).

def synthetic_batch(shape, bs:int, device, n_bits:int=8, seed:int=0, channels_last=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randint(0, 2**n_bits, (bs, *shape), generator=g).float() / (2**n_bits - 1)).to(device)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x

# ---- the speed run -------------------------------------------------------------------------------------------

def param_counts(model)->dict:
    "Parameters of the model (and of G and D separately for a GAN)."
    out = dict(params=n_params(model))
    if hasattr(model, 'G') and hasattr(model, 'D'): out.update(params_G=n_params(model.G), params_D=n_params(model.D), params_note='params counts G, D and the EMA copy of G')
    return out

def default_steps(args, gpu_steps:int)->tuple[int, int]:
    "Timed and warm-up steps: `--steps` (default: the configuration's `gpu_steps` on CUDA, 4 on a CPU) and `--warmup-steps`."
    steps = args.steps if args.steps is not None else (gpu_steps if torch.device(args.device).type == 'cuda' else 4)
    warmup = args.warmup_steps if args.warmup_steps is not None else (1 if steps <= 4 else 5)
    return steps, warmup

def speed_main(name:str, args, configs:dict, learner_fn, plain_fn, extra:dict|None=None, out:str|None=None):
    """Run `speed_run` for each configuration in `--config` (comma-separated) in this process; print one JSON object (a
    list for several); a configuration that fails gives an object with its error and the exit status 1."""
    import traceback
    results = []
    for c in args.config.split(','):
        try: r = speed_run(name, args, c, config_of(configs, c), learner_fn, plain_fn)
        except Exception as e:
            traceback.print_exc()
            r = dict(benchmark=name, config=c, error=f'{type(e).__name__}: {e}'[:2000])
        r.update(extra or {})
        results.append(r)
        if torch.device(args.device).type == 'cuda': torch.cuda.empty_cache()
    res = results[0] if len(results) == 1 else results
    s = json.dumps(res, indent=1)
    print(s, flush=True)
    if out: Path(out).write_text(s + '\n')
    if any('error' in r for r in results): sys.exit(1)
    return res

def speed_run(name:str, args, config:str, cfg:dict, learner_fn, plain_fn)->dict:
    """Measure configuration `config` (`cfg`). `learner_fn(dls, opts, cfg)` -> (Learner, `to_compiled` kwargs, phase `every`);
    `plain_fn(opts, device, bs, cfg)` -> dict(model, phases, batch, opt_info, compile=callable, every)."""
    device = check_device(args.device)
    opts = Options(args, device)
    steps, warmup = default_steps(args, cfg.get('gpu_steps', 50))
    if args.dry_run and cfg.get('dry'):
        dry = cfg['dry']
        cfg = {**cfg, **{k: v for k, v in dry.items() if k != 'note'}, 'desc': f"{cfg['desc']} -- REDUCED for the dry run: {dry['note']}"}
    bs = args.bs or cfg['bs']
    path = args.path if args.path != 'auto' else ('learner' if FASTAI else 'plain')
    if path == 'learner' and not FASTAI: sys.exit('--path learner needs fastai, which is not installed: use --path plain (or auto).')
    torch.manual_seed(0)
    t0 = time.perf_counter()
    res = dict(benchmark=name, config=config, dry_run=bool(args.dry_run), config_desc=cfg['desc'], image='x'.join(map(str, cfg['shape'])), batch=bs,
               path=path, device=str(device), torch=torch.__version__, threads=torch.get_num_threads(), options=opts.as_dict())
    if path == 'plain':
        res['path_note'] = ("the model's training step timed in a plain PyTorch loop (forward, loss, backward, optimiser step, "
                            "with the same options)" + (': fastai is not installed' if not FASTAI else ': asked for with --path plain'))
        p = plain_fn(opts, device, bs, cfg)
        res.update(param_counts(p['model']))
        res['optimizer'] = p['opt_info']
        m = plain_measure(p['phases'], p['batch'], device, steps, warmup, args.time_budget,
                          p['compile'] if opts.compile else None)
        every = p.get('every')
    else:
        res['path_note'] = "the fastai Learner's training step (all its callbacks), data loading excluded"
        from deepgen.compare import synthetic_dls
        dls = synthetic_dls(cfg['shape'], bs, warmup + steps + 3, device, n_bits=cfg.get('n_bits', 8))
        learn, compile_kw, every = learner_fn(dls, opts, cfg)
        notes = []
        apply_options(learn, opts, notes, compile_fn=lambda l: None)   # compiled after the step that counts FLOPs (below)
        if learn.opt is None: learn.create_opt()
        res.update(param_counts(learn.model))
        res['optimizer'] = optimizer_info(learn.opt, notes)
        m = learner_measure(learn, device, steps, warmup, args.time_budget,
                            (lambda: learn.to_compiled(**compile_kw)) if opts.compile else None)
    res.update(summarise(m, bs, device, opts.amp, every))
    res['warmup_steps'] = warmup
    res['wall_seconds'] = round(time.perf_counter() - t0, 1)
    return res
