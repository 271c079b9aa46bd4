"The report `deepgen compare` writes renders: every Markdown table has as many cells in each row as in its header, every image it links exists, and no path of this machine is in it."
import json, os, re, shutil, subprocess
from pathlib import Path
import pytest
from deepgen.report import md_tables

EXE = shutil.which('deepgen') or pytest.skip('the deepgen console script is not installed (pip install -e .)', allow_module_level=True)

@pytest.fixture(scope='module')
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp('cmp')/'report'
    r = subprocess.run([EXE, 'compare', '--budget', '30', '--quick', '--out', str(out)], capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONWARNINGS': 'ignore'})
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def test_tables_render(report):
    md = (report/'report.md').read_text()
    tables = md_tables(md)
    assert len(tables) == 9, len(tables)   # the summary and the eight sections
    for t in tables:
        assert len(t) >= 3 and all(len(row) == len(t[0]) for row in t), t
    assert r'q(z\|x)' in md

def test_images_and_files(report):
    md = (report/'report.md').read_text()
    imgs = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', md)
    assert len(imgs) >= 6 and all((report/f).is_file() and (report/f).stat().st_size > 0 for f in imgs), imgs
    res = json.loads((report/'results.json').read_text())
    assert all((report/f).is_file() for f in res['files'].values()), res['files']

def test_no_machine_path(report):
    for f in ('report.md', 'results.json'):
        text = (report/f).read_text()
        for p in (str(report), str(Path.home()), '/tmp/'): assert p not in text, (f, p)
