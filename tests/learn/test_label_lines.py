"""The write-up's pipe: `yes "$(cat data.txt)" | head -n 10000 | router train --data - -- ./prog`
trains the template `predict -- ./prog` looks up, keeps each input on one side of the
validation split, and stops early instead of running to the epoch cap."""

from __future__ import annotations

import json
import subprocess

import numpy as np

from conftest import ROUTER
from router.learn.dataset import from_lines
from router.learn.encoding import groups
from router.learn import folds

DATA = "".join(f"{i} | {int(i > 20)}\n" for i in range(1, 41))


def test_repeats_of_one_input_are_held_out_by_one_member():
    data = from_lines(DATA.splitlines() * 50, None, ["./prog"])
    group = groups(data)
    fold = folds.assign(group, members=5, seed=0)
    assert len(np.unique(group)) == 40 and set(fold) == {0, 1, 2, 3, 4}
    for g in np.unique(group):
        assert len(set(fold[group == g])) == 1


def test_duplicated_lines_train_the_commands_template_as_one_row_each(env):
    r = subprocess.run(["sh", "-c", f'yes "$(cat)" | head -n 10000 | {" ".join(ROUTER)} train '
                        "--data - --threshold 1 --json -- ./prog"], input=DATA, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["samples"] == 10000 and summary["epochs"] == 600   # 40 rows: one batch
    p = subprocess.run([*ROUTER, "predict", "--threshold", "1", "--", "./prog", "35"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "model p=" in p.stdout, p.stdout + p.stderr


def test_label_lines_without_a_command_are_refused_in_one_line(env):
    r = subprocess.run([*ROUTER, "train", "--data", "-", "--threshold", "1"], input=DATA,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1
    assert "-- ./prog" in r.stderr and "Traceback" not in r.stderr
