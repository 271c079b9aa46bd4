"The built wheel installs into a fresh virtual environment and trains a tiny Learner there, away from the source tree."
import subprocess, sys, sysconfig, textwrap, venv
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

def run(*args, cwd=None, **kw):
    r = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, args))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout

@pytest.fixture(scope='module')
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    run(sys.executable, '-m', 'build', '--wheel', '--outdir', out, ROOT, cwd=ROOT)
    whl, = out.glob('deepgen-*.whl')
    return whl

def test_wheel_installs_and_trains(wheel, tmp_path):
    env_dir = tmp_path/'venv'
    venv.create(env_dir, with_pip=True)
    py = env_dir/'bin'/'python'
    site = Path(run(py, '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])').strip())
    # reuse this interpreter's torch, fastai, ... instead of downloading gigabytes again
    (site/'_reuse_parent.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    run(py, '-m', 'pip', 'install', '-q', '--no-deps', '--no-index', wheel)
    work = tmp_path/'elsewhere'; work.mkdir()
    script = textwrap.dedent(f'''
        import deepgen, pathlib
        assert pathlib.Path(deepgen.__file__).is_relative_to({str(site)!r}), deepgen.__file__
        from deepgen.data import image_dls
        from deepgen.glow_learner import glow_learner
        dls = image_dls('digits', bs=16)
        learn = glow_learner(dls, n_levels=2, n_steps=1, hidden=8)
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[])
        print('trained', deepgen.__version__, learn.recorder.losses[-1].item())
    ''')
    out = run(py, '-c', script, cwd=work, env={'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path), 'MPLBACKEND': 'Agg'})
    assert 'trained' in out
