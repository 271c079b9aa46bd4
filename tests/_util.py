"What several test files share: the repository root, MNIST when it is on disk, a free port, and running a script as a subprocess."
import os, socket, subprocess, sys
from pathlib import Path
from deepgen.data import find_file

ROOT = Path(__file__).resolve().parents[1]
MNIST = find_file('mnist.npz')   # deepgen's own search (DEEPGEN_DATA, data/, ../shared/data, ...)

def free_port()->int:
    "A TCP port no process listens on now, for a `torch.distributed` rendezvous."
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def run_python(args, timeout=300):
    "Run `python *args` from the repository root with one thread per process; fail with its output if it fails."
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]),
           'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'PYTHONWARNINGS': 'ignore'}
    r = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, args))} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r
