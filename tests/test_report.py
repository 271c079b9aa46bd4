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

def _likelihood_rows(report):
    "Section 1's table as dicts of its cells, keyed by the header; and the results' rows."
    md = (report/'report.md').read_text()
    sec = md.split('## 1.')[1].split('\n## ')[0]
    head, _, *rows = md_tables(sec)[0]
    return [dict(zip(head, r)) for r in rows], json.loads((report/'results.json').read_text())['sections']['likelihood']['rows']

def test_likelihood_rows_carry_their_protocol(report):
    rows, res = _likelihood_rows(report)
    proto, est = [k for k in rows[0] if k.startswith('protocol')][0], [k for k in rows[0] if k.startswith('estimator')][0]
    pub = [k for k in rows[0] if k.startswith('published')][0]
    measured = [r for r in rows if r['model'] in ('Glow', 'NVAE')]
    assert {r['model'] for r in measured} == {'Glow', 'NVAE'}, rows
    for r in measured:   # the data, its bits, the pixels scored, the likelihood; the estimator and the number of images
        assert 'digits' in r[proto] and '8-bit' in r[proto] and 'sub-pixels' in r[proto], r
        assert ('dequantised' if r['model'] == 'Glow' else 'logistic') in r[proto], r
        assert re.search(r'\d+ images', r[est]) and re.search(r'exact|ELBO|importance-weighted bound, K=\d+', r[est]), r
        assert 'bits/dim' in r[[k for k in r if k.startswith('ours')][0]], r
        assert 'paper' not in r[pub].split('(')[0], r   # no paper measured the digits: none is quoted beside them
    assert len(res) == len(rows) and all(x['protocol'] for x in res)

def test_flows_and_paper_protocol_rows(report):
    rows, _ = _likelihood_rows(report)
    ours = [k for k in rows[0] if k.startswith('ours')][0]
    fl = [r for r in rows if r['model'].startswith('NVAE with posterior flows')]
    assert fl, rows
    for r in fl:   # a figure, or why there is none and how to have one
        assert re.match(r'[\d.]+ bits/dim$', r[ours]) or (r[ours].startswith('skipped') and '--flows' in r[ours]), r
    pp = [r for r in rows if r['model'].startswith('NVAE, paper protocol')]
    assert len(pp) == 1 and 'binarised' in pp[0]['model'] and 'Bernoulli' in pp[0]['model'], rows
    assert pp[0][ours].startswith('skipped') and '--data mnist --pad 2' in pp[0][ours], pp   # the digits are not MNIST

def test_sections_and_budget(report):
    "The README's main job on a small budget: `deepgen compare` on the digits writes the eight comparisons and the JSON, and says what it used."
    res = json.loads((report/'results.json').read_text())
    assert res['budget_s'] == 30 and res['budget_used_s'] > 0   # (how closely small budgets are kept is measured, not asserted: it depends on the machine's load)
    md = (report/'report.md').read_text()
    for i in range(1, 9): assert re.search(rf'^## {i}\. ', md, re.M), f'section {i} missing'
