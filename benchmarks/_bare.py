"""Stand-ins that let deepgen's model modules import on a machine with only torch, torchvision and numpy.

Why: a GPU machine for benchmarks may have nothing but torch, torchvision and numpy next to deepgen (installed
with `pip install --no-deps -e .`). Every deepgen module imports fastcore/fastai (and some import matplotlib or
torchmetrics) at the top, for the Learners, callbacks and plots, although the networks themselves (`Glow`, `NVAE`,
`Generator`, `Discriminator`) and their losses need only torch. Rather than change the library for the benchmarks,
`install()` puts minimal stand-in modules in `sys.modules`' way (a `sys.meta_path` finder), only for the top-level
packages that cannot be imported, so that `import deepgen.glow` succeeds and the model classes run with torch alone.

What the stand-ins hold:
- real, small implementations of the few helpers the model code calls while building or running a network:
  `store_attr`, `patch`, `L`, `IN_NOTEBOOK`, `set_seed`, `default_device`, `ifnone`, `find_bs`, `get_model`,
  `rank_distrib`, `num_distrib`, `test_eq`, `test_close`;
- for every other name, an inert placeholder class (so `class X(Callback)` and `ParamScheduler.order` work at
  import time); calling or instantiating one raises an ImportError naming the missing package. Learners, callbacks,
  DataLoaders and metrics are therefore unusable in this mode, which is why the benchmarks time their training
  step in a plain PyTorch loop then, and say so in their JSON.

Nothing is done when the packages are installed: `install()` only covers what `importlib` cannot find.
"""
from __future__ import annotations
import importlib.abc, importlib.machinery, importlib.util, inspect, os, random, re, sys, types
from functools import partial

# Top-level packages deepgen's modules import beside torch, torchvision and numpy.
# (Only these: a stand-in for a package that other code probes with `try: import ...` would mislead it.)
OPTIONAL_ROOTS = ('fastai', 'fastcore', 'fasttransform', 'torchmetrics', 'matplotlib', 'PIL')
NEED_FASTCORE = ('fastai', 'fasttransform')   # unusable without fastcore even where installed


def missing(name:str)->bool:
    "True if the top-level package `name` cannot be imported (not installed, or blocked by an import hook)."
    if _installed is not None and name in _installed.roots: return True
    if name in sys.modules and not getattr(sys.modules[name], '__deepgen_stand_in__', False): return False
    try: return importlib.util.find_spec(name) is None
    except (ImportError, ValueError): return True


def fastai_available()->bool:
    "Whether the real fastai and fastcore are importable (the Learner-based measurements need them)."
    return not (missing('fastai') or missing('fastcore'))


# ---- real implementations of the helpers the model code uses -------------------------------------------------

def store_attr(names=None, self=None, but='', cast=False, store_args=None, **attrs):
    "Store the caller's arguments (all, or `names`) as attributes of its `self` (as fastcore's `store_attr`)."
    fr = sys._getframe(1)
    code = fr.f_code
    args = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    if self is None: self, args = fr.f_locals[args[0]], args[1:]
    if isinstance(names, str): names = re.split(', *', names)
    ns = names if names is not None else args
    if isinstance(but, str): but = re.split(', *', but) if but else []
    for k, v in {**attrs, **{n: fr.f_locals[n] for n in ns}}.items():
        if k not in but: setattr(self, k, v)


def patch(f=None, *, as_prop=False, cls_method=False):
    "Add `f` to the class (or classes) of its first parameter's annotation (as fastcore's `patch`)."
    if f is None: return partial(patch, as_prop=as_prop, cls_method=cls_method)
    fn = inspect.unwrap(f)
    ann = next(iter(fn.__annotations__.values()))
    if isinstance(ann, str): ann = eval(ann, fn.__globals__)
    clss = ann if isinstance(ann, tuple) else getattr(ann, '__args__', None) or (ann,)
    for c in clss:
        setattr(c, f.__name__, property(f) if as_prop else classmethod(f) if cls_method else f)
    return f


class L(list):
    "A list that also accepts a single item or `None` (enough of fastcore's `L` for deepgen's model code)."
    def __init__(self, items=None, *rest):
        if items is None: items = []
        elif rest or isinstance(items, (str, bytes, dict)) or not hasattr(items, '__iter__') or hasattr(items, 'shape'):
            items = [items, *rest]
        super().__init__(items)
    def __add__(self, o): return L(list(self) + list(L(o)))
    def __radd__(self, o): return L(list(L(o)) + list(self))


def ifnone(a, b): return b if a is None else a


def set_seed(s, reproducible=False):
    "Seed Python's, NumPy's and torch's generators."
    import numpy as np, torch
    random.seed(s); np.random.seed(s % 2**32); torch.manual_seed(s)


def default_device(use=-1):
    import torch
    return torch.device('cuda') if use and torch.cuda.is_available() else torch.device('cpu')


def find_bs(b):
    "Batch size of the first tensor found in `b`."
    import torch
    if isinstance(b, torch.Tensor): return len(b)
    if isinstance(b, dict): return find_bs(next(iter(b.values())))
    return find_bs(b[0])


def get_model(m): return getattr(m, 'module', m)
def rank_distrib(): return int(os.environ.get('RANK', 0))
def num_distrib(): return int(os.environ.get('WORLD_SIZE', 0))


def test_eq(a, b):
    import torch
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor): assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), (a, b)
    else: assert a == b, (a, b)


def test_close(a, b, eps=1e-5):
    import torch
    assert torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=eps, rtol=0), (a, b)


_installed = None   # the finder, once `install` has run

REAL = dict(store_attr=store_attr, patch=patch, L=L, ifnone=ifnone, set_seed=set_seed, default_device=default_device,
            find_bs=find_bs, get_model=get_model, rank_distrib=rank_distrib, num_distrib=num_distrib,
            test_eq=test_eq, test_close=test_close, IN_NOTEBOOK=False, IN_IPYTHON=False, IN_JUPYTER=False)


# ---- placeholders for everything else ------------------------------------------------------------------------

class _PlaceholderMeta(type):
    "Class-level attribute access on a placeholder (e.g. `URLs.MNIST`) gives another placeholder."
    def __getattr__(cls, name):
        if name.startswith('__'): raise AttributeError(name)
        return _placeholder(f'{cls.__name__}.{name}', cls.__deepgen_root__)


class _Placeholder(metaclass=_PlaceholderMeta):
    order = 0               # callbacks' `order` is read at class-definition time (e.g. `ParamScheduler.order + 1`)
    __deepgen_root__ = '?'
    def __init__(self, *args, **kwargs):
        raise ImportError(f"{type(self).__name__} needs the package {self.__deepgen_root__!r}, which is not installed "
                          "(deepgen imported with the stand-ins of benchmarks/_bare.py: models only).")


_cache = {}
def _placeholder(name, root):
    if name not in _cache: _cache[name] = _PlaceholderMeta(name.split('.')[-1], (_Placeholder,), {'__deepgen_root__': root})
    return _cache[name]


class _StandInModule(types.ModuleType):
    __deepgen_stand_in__ = True
    def __getattr__(self, name):
        if name.startswith('__'): raise AttributeError(name)
        if name in REAL: return REAL[name]
        return _placeholder(name, self.__name__.split('.')[0])


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    "Serve a stand-in module for every module under the roots in `self.roots`."
    def __init__(self, roots): self.roots = set(roots)
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split('.')[0] not in self.roots: return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
    def create_module(self, spec):
        m = _StandInModule(spec.name)
        m.__path__ = []
        return m
    def exec_module(self, module): pass


def install(roots=OPTIONAL_ROOTS)->list[str]:
    "Install stand-ins for the packages in `roots` that cannot be imported; return their names (empty: nothing to do)."
    global _installed
    if _installed is not None: return sorted(_installed.roots)
    no_fastcore = missing('fastcore')
    need = [r for r in roots if missing(r) or (no_fastcore and r in NEED_FASTCORE)]
    _installed = _Finder(need)
    if need: sys.meta_path.insert(0, _installed)
    return need
