"DDP with deepgen.train on CPUs: two Gloo processes train like one process with the global batch."
import pytest
import torch
from _util import ROOT, free_port, run_python

TOY = ROOT/'tests'/'ddp_toy.py'

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    run_python(['-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', free_port(), TOY, out/'ddp'])
    run_python([TOY, out/'single', '--emulate', '2'])
    load = lambda f: torch.load(f, weights_only=True)
    return out, load(out/'ddp'/'rank0.pt'), load(out/'ddp'/'rank1.pt'), load(out/'single'/'single.pt')

@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason='needs torch.distributed with Gloo')
def test_ranks_identical(runs):
    _, r0, r1, _ = runs
    assert r0['world'] == r1['world'] == 2
    for k in r0['model']:
        assert torch.equal(r0['model'][k], r1['model'][k]), k
        assert torch.equal(r0['ema'][k], r1['ema'][k]), k

@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason='needs torch.distributed with Gloo')
def test_ddp_equals_single_process_with_global_batch(runs):
    _, r0, _, s = runs
    assert r0['train_iter'] == s['train_iter'] == 3 * 64 // 8   # 3 epochs of 8 global batches of 8
    for k in r0['model']:
        torch.testing.assert_close(r0['model'][k], s['model'][k], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(r0['ema'][k], s['ema'][k], rtol=1e-4, atol=1e-5)
    init = torch.nn.Linear(4, 8)  # the weights did move away from any initialisation
    assert not torch.allclose(r0['model']['0.weight'], init.weight)

@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(), reason='needs torch.distributed with Gloo')
def test_rank0_writes_and_throughput_logged(runs):
    out, r0, _, _ = runs
    assert (out/'ddp'/'ckpt_rank0'/'checkpoint.pth').exists()
    assert not (out/'ddp'/'ckpt_rank1').exists()          # Checkpoint writes from rank 0 only
    ck = torch.load(out/'ddp'/'ckpt_rank0'/'checkpoint.pth', weights_only=True)
    assert ck['format'] == 'deepgen-checkpoint' and ck['epoch'] == 3
    for k in r0['model']: torch.testing.assert_close(ck['model'][k], r0['model'][k])
    names = r0['names']
    assert names[-3:] == ['img_per_sec', 'peak_mem_mib', 'time']
    for row in r0['values']:
        assert row[names.index('img_per_sec') - 1] > 0 and row[names.index('peak_mem_mib') - 1] > 0
