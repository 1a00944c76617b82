"""The per-run mapper: results aligned with runs, listed exclusions, a cache trusted only when complete."""

import json
import os
from functools import partial

import numpy as np
import pandas as pd
import pytest

from craving_circuits.io.runs import (
    RunCache,
    RunExcluded,
    RunOutput,
    file_fingerprint,
    map_runs,
)

MASK = np.zeros((4, 4, 4), bool)
MASK[1:3, 1:3, 1:3] = True


def _value(run: dict, scale: float = 1.0) -> RunOutput:
    """A per-run function of the run's file: its number times ``scale`` in every voxel."""
    text = open(run["bold"]).read().strip()
    if text == "bad":
        raise RunExcluded(f"{run['bold']} cannot be read")
    value = float(text) * scale
    return RunOutput(np.full(int(MASK.sum()), value, np.float32), {"value": value})


@pytest.fixture()
def runs(tmp_path):
    rows = []
    for i in range(5):
        path = tmp_path / "in" / f"run{i}.txt"
        path.parent.mkdir(exist_ok=True)
        path.write_text("bad" if i == 2 else str(i))
        rows.append({"participant_id": f"sub-{i:02d}", "session_id": "ses-1", "state": "rest", "bold": str(path)})
    return pd.DataFrame(rows)


def _cache(folder, scale=1.0):
    return RunCache(
        folder=folder,
        settings={"scale": scale},
        stem=lambda run: "value",
        inputs=lambda run: [run["bold"]],
        mask=MASK,
        affine=np.eye(4),
    )


def test_results_align_with_runs_and_exclusions_are_listed(runs):
    serial = map_runs(runs, _value, "toy")
    parallel = map_runs(runs, _value, "toy", n_jobs=2)
    assert list(serial.runs["participant_id"]) == ["sub-00", "sub-01", "sub-03", "sub-04"]
    np.testing.assert_array_equal(serial.maps(8)[:, 0], [0, 1, 3, 4])
    np.testing.assert_array_equal(parallel.maps(8), serial.maps(8))
    assert serial.exclusions.to_dict("records") == [
        {
            "participant_id": "sub-02",
            "session_id": "ses-1",
            "state": "rest",
            "stage": "toy",
            "file": runs.loc[2, "bold"],
            "reason": f"{runs.loc[2, 'bold']} cannot be read",
        }
    ]
    assert map_runs(runs.iloc[:0], _value, "toy").maps(8).shape == (0, 8)


def test_other_errors_are_not_swallowed(runs):
    with pytest.raises(FileNotFoundError):
        map_runs(runs.assign(bold="/nonexistent"), _value, "toy")


def test_cache_is_reused_only_when_complete_and_unchanged(runs, tmp_path):
    folder = tmp_path / "out"
    first = map_runs(runs, _value, "toy", _cache(folder))
    assert first.n_cached == 0
    again = map_runs(runs, _value, "toy", _cache(folder))
    assert again.n_cached == 5  # the excluded run too, with its reason
    np.testing.assert_array_equal(again.maps(8), first.maps(8))
    assert again.exclusions.equals(first.exclusions)
    # the map is on the cache's grid; the sidecar holds the record, the key and the inputs
    sidecar = json.loads((folder / "sub-01" / "ses-1" / "value.json").read_text())
    assert sidecar["record"] == {"value": 1.0}
    assert sidecar["inputs"] == file_fingerprint([runs.loc[1, "bold"]])
    # an interrupted run (map written, sidecar not yet): recomputed
    (folder / "sub-01" / "ses-1" / "value.json").unlink()
    assert map_runs(runs, _value, "toy", _cache(folder)).n_cached == 4
    # a changed input file: that run recomputed
    stat = os.stat(runs.loc[3, "bold"])
    os.utime(runs.loc[3, "bold"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert map_runs(runs, _value, "toy", _cache(folder)).n_cached == 4
    # other settings: nothing reused, and the new values are what the function gives
    other = map_runs(runs, partial(_value, scale=2.0), "toy", _cache(folder, scale=2.0))
    assert other.n_cached == 0
    np.testing.assert_array_equal(other.maps(8)[:, 0], [0, 2, 6, 8])


def test_the_stage_can_refuse_a_cached_record(runs, tmp_path):
    folder = tmp_path / "out"
    map_runs(runs, _value, "toy", _cache(folder))
    picky = RunCache(
        folder=folder,
        settings={"scale": 1.0},
        stem=lambda run: "value",
        inputs=lambda run: [run["bold"]],
        mask=MASK,
        affine=np.eye(4),
        accept=lambda record: record.get("value", 0) > 2,
    )
    assert map_runs(runs, _value, "toy", picky).n_cached == 3  # runs 3 and 4, and the excluded run
    assert not list(folder.rglob(".tmp-*"))
