"The stored outputs of the notebooks are part of the docs: no warnings, no tracebacks, no path of the machine that ran them."
import json, re
from pathlib import Path
import pytest

NBS = sorted((Path(__file__).resolve().parents[1]/'nbs').glob('*.ipynb'))
# absolute paths of a machine (POSIX roots, Windows drives, the user's home) and of an installed environment
PATH = re.compile(r"(?<![\w.~])(/(work|root|home|tmp|usr|opt|var|srv|mnt|Users|private)/\S*|[A-Za-z]:\\\S*|site-packages|\.venv/)")
WARNING = re.compile(r"\b[A-Z]\w*Warning\b")

def output_texts(nb:dict):
    "(cell index, text) of every text a reader of the rendered notebook sees among its outputs."
    for i,c in enumerate(nb['cells']):
        for o in c.get('outputs', []):
            if o['output_type'] == 'stream': yield i, ''.join(o['text'])
            elif o['output_type'] == 'error': yield i, f"Traceback: {o.get('ename')}: {o.get('evalue')}"
            else:
                for k,v in o.get('data', {}).items():
                    if k.startswith('text/'): yield i, ''.join(v) if isinstance(v, list) else v

def problems(nb:dict)->list:
    "What a reader should not see: warnings, tracebacks and paths of a machine, with the cell they are in."
    out = []
    for i,t in output_texts(nb):
        for rx,what in ((WARNING, 'a warning'), (PATH, 'a path of the machine')):
            m = rx.search(t)
            if m: out.append(f"cell {i}: {what}: ...{t[max(0, m.start()-60):m.end()+40]!r}...")
        if t.startswith('Traceback: '): out.append(f"cell {i}: a stored error: {t}")
    return out

def test_checker_finds_what_it_must():
    bad = {'cells': [{'cell_type': 'code', 'outputs': [
        {'output_type': 'stream', 'name': 'stderr', 'text': ['/home/me/env/lib/python3.11/site-packages/x.py:3: FutureWarning: old\n']},
        {'output_type': 'execute_result', 'data': {'text/plain': ["cached in /root/.cache/deepgen/clf.pth"]}},
        {'output_type': 'error', 'ename': 'ValueError', 'evalue': 'no', 'traceback': []}]}]}
    found = ' '.join(problems(bad))
    assert 'a warning' in found and 'a path of the machine' in found and 'stored error' in found
    good = {'cells': [{'cell_type': 'code', 'outputs': [{'output_type': 'stream', 'name': 'stdout',
             'text': ['test bits/dim 2.44 after 1,687 steps; saved to models/glow.pth (0.5/1.0 at T=0.7)\n']}]}]}
    assert problems(good) == []

@pytest.mark.parametrize('nb', NBS, ids=[f.name for f in NBS])
def test_stored_outputs_are_clean(nb):
    found = problems(json.loads(nb.read_text()))
    assert not found, f"{nb.name} has stored outputs a reader should not see:\n" + '\n'.join(found)
