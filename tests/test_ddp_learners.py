"Glow, NVAE and StyleGAN2 under DDP on CPUs: two Gloo processes end with the same weights, equal to one process with the global batch."
import pytest
import torch
from _util import ROOT, free_port, run_python

SCRIPT = ROOT/'tests'/'ddp_learners.py'
pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason='needs torch.distributed with Gloo')

@pytest.fixture(scope='module', params=['glow', 'nvae', 'stylegan2'])
def runs(request, tmp_path_factory):
    name, out = request.param, tmp_path_factory.mktemp(request.param)
    run_python(['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', free_port(), SCRIPT, name, out/'ddp'])
    run_python([SCRIPT, name, out/'single', '--emulate', '2'])
    load = lambda f: torch.load(f, weights_only=True)
    return name, load(out/'ddp'/'rank0.pt'), load(out/'ddp'/'rank1.pt'), load(out/'single'/'single.pt')

def test_ranks_identical(runs):
    name, r0, r1, _ = runs
    assert r0['world'] == r1['world'] == 2
    for k in r0['state']: assert torch.equal(r0['state'][k], r1['state'][k]), f'{name}: {k} differs between the ranks'

def test_ddp_equals_single_process_with_global_batch(runs):
    "Each tensor's training update under DDP equals one process's to float rounding: 1% of the update, far below what other noise would give."
    name, r0, _, s = runs
    assert r0['train_iter'] == s['train_iter'] == 2 * 32 // 8   # 2 epochs of 4 global batches of 8
    moved = 0
    for k, v in r0['state'].items():
        if not v.is_floating_point():
            assert torch.equal(v, s['state'][k]), f'{name}: {k}'
            continue
        step = (s['state'][k] - r0['init'][k].to(v)).double().norm()
        diff = (v - s['state'][k]).double().norm()
        if step > 0: moved += 1
        assert diff <= 1e-2 * step + 1e-6, f'{name}: {k} differs from the one-process run by {diff:.3g}, its update is {step:.3g}'
    assert moved > len(r0['state']) // 2, f'{name}: only {moved} of {len(r0["state"])} tensors changed in training'
