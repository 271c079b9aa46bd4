"""Train a tiny Glow, NVAE or StyleGAN2 Learner under DDP and save what each process ends with.

    python -m torch.distributed.run --nproc_per_node 2 tests/ddp_learners.py glow OUTDIR
    python tests/ddp_learners.py glow OUTDIR --emulate 2     # one process, the global batches of 2 ranks

Each process writes OUTDIR/rank{r}.pt (OUTDIR/single.pt with --emulate): the model's state (weights and buffers:
ActNorm's initialisation, NVAE's batch-norm statistics, StyleGAN2's EMA generator and tracked mean w) and the
step count. fastai's `DistributedDL` gives rank r of W the r-th contiguous slice of the (unshuffled) epoch;
--emulate feeds one process, at each step, the W per-rank batches of that step one after the other, which is the
global batch DDP trains on. deepgen draws each process's noise as its block of the global batch's noise
(`deepgen.core.batch_randn`), so the two runs compute the same numbers up to the order of floating-point sums.
"""
import argparse
from pathlib import Path
import torch
from fastai.basics import DataLoader, DataLoaders, get_model, num_distrib, rank_distrib
from deepgen.data import image_dls
from deepgen.registry import build_learner
from deepgen.distributed import ddp_ctx

N, NV, BS, EPOCHS = 32, 8, 4, 2   # training images, validation images, batch per rank, epochs

def digits(n, nv):
    "The first `n` training and `nv` validation 8x8 digits as (image,) tuples, images on the 8-bit grid in [0, 1]."
    dls = image_dls('digits', bs=64, seed=0)
    x = torch.cat([b[0].as_subclass(torch.Tensor).cpu() for b in dls.train.new(shuffle=False, drop_last=False)])
    return [(o,) for o in x[:n]], [(o,) for o in x[n:n+nv]]

# what differs from the registry's small configuration: a short warm-up, no NaN guard, lazy regularisers due often enough to run in a few steps
EXTRA = dict(glow=dict(warmup=4), nvae=dict(nan_guard=False), stylegan2=dict(r1_every=2, pl_every=2))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('model', choices=['glow', 'nvae', 'stylegan2'])
    p.add_argument('out', type=Path)
    p.add_argument('--emulate', type=int, default=0, help='run in one process with the global batches of this many ranks')
    a = p.parse_args()
    W = a.emulate or max(num_distrib(), 1)
    ds, dv = digits(N, NV)
    if a.emulate:
        order = [r*N//W + j*BS + i for j in range(N//W//BS) for r in range(W) for i in range(BS)]
        ds, bs = [ds[i] for i in order], BS*W
    else: bs = BS
    dls = DataLoaders(DataLoader(ds, bs=bs, shuffle=False, drop_last=True), DataLoader(dv, bs=bs), path=a.out, device='cpu')
    dls.img_shape, dls.n_bits = tuple(ds[0][0].shape), 8
    learn = build_learner(a.model, dls, seed=0, **EXTRA[a.model])
    init = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with ddp_ctx(learn), learn.no_bar(), learn.no_logging(): learn.fit(EPOCHS, 1e-3)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.save({'state': get_model(learn.model).state_dict(), 'init': init, 'world': W, 'train_iter': learn.train_iter},
               a.out/('single.pt' if a.emulate else f'rank{rank_distrib()}.pt'))

if __name__ == '__main__': main()
