"""Train a toy regression with deepgen's callbacks under DDP and save what each process ends with.

    python -m torch.distributed.run --nproc_per_node 2 --master_port 29501 tests/ddp_toy.py OUTDIR
    python tests/ddp_toy.py OUTDIR --emulate 2     # one process, the same global batches as 2 ranks

Each process writes OUTDIR/rank{r}.pt (OUTDIR/single.pt with --emulate): the weights, the EMA weights, the
Recorder's values and the step count. fastai's `DistributedDL` gives rank r of W the r-th contiguous slice of
the (unshuffled) epoch, so step j of rank r sees samples r*N/W + j*BS ... + BS-1; --emulate feeds one process
exactly those W*BS samples per step, and DDP's gradient average equals the mean loss's gradient over them.
"""
import argparse
from pathlib import Path
import torch
from torch import nn
from fastai.basics import DataLoader, DataLoaders, Learner, MSELossFlat, set_seed, rank_distrib, num_distrib, get_model
import fastai.callback.schedule  # Learner.fit_one_cycle
from deepgen.train import EMA, NaNGuard, Throughput, Checkpoint, ema_decay
from deepgen.distributed import ddp_ctx

N, NV, BS, EPOCHS = 64, 16, 4, 3   # samples, validation samples, batch per rank, epochs

def toy_data(n, seed):
    "A fixed linear regression problem with a little noise."
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.], [-2.], [0.5], [3.]]) + 0.1 * torch.randn(n, 1, generator=g)
    return list(zip(x, y))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('out', type=Path)
    p.add_argument('--emulate', type=int, default=0, help='run in one process with the global batches of this many ranks')
    a = p.parse_args()
    W = a.emulate or max(num_distrib(), 1)
    ds, dv = toy_data(N, 0), toy_data(NV, 1)
    if a.emulate:  # one process: global batches of W*BS in the order the W ranks would see them
        order = [r*N//W + j*BS + i for j in range(N//W//BS) for r in range(W) for i in range(BS)]
        ds, bs = [ds[i] for i in order], BS*W
    else: bs = BS
    set_seed(0)
    dls = DataLoaders(DataLoader(ds, bs=bs, shuffle=False, drop_last=True), DataLoader(dv, bs=bs), path=a.out, device='cpu')
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    rank = rank_distrib()
    learn = Learner(dls, model, loss_func=MSELossFlat(),
                    cbs=[EMA(ema_decay(64, BS*W)), NaNGuard(every=2), Throughput(), Checkpoint(folder=a.out/f'ckpt_rank{rank}')])
    with ddp_ctx(learn), learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(EPOCHS, 1e-2)
    torch.save({'model': get_model(learn.model).state_dict(), 'ema': learn.ema_model.state_dict(), 'world': W,
                'names': list(learn.recorder.metric_names), 'values': [[float(v) for v in row] for row in learn.recorder.values],
                'train_iter': learn.train_iter}, a.out/('single.pt' if a.emulate else f'rank{rank}.pt'))

if __name__ == '__main__': main()
