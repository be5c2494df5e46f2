"""Checkpoints on their own: the round trip of a full state, damaged and foreign checkpoints, the
best checkpoint's idempotent save, and the lock that gives a run directory one owner."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from mapo_jax import checkpointing, learning
from mapo_jax.acting import ActorStats
from mapo_jax.errors import UserInputError
from mapo_jax.model import policy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_learning import CONFIG, learner_batch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _train_state(seed=0):
    params = policy.init(jax.random.PRNGKey(seed), CONFIG, np.ones((20, 8), np.float32))
    return learning.init_state(params, learning.make_optimizer(), jax.random.PRNGKey(seed + 1))


def _host_batch(seed=0):
    return jax.tree_util.tree_map(np.asarray, learner_batch(seed=seed))


def _full_state(step=7):
    state = _train_state()
    queued = [(7, _host_batch(0), ActorStats(float("nan"), 2, 0.5, 0.25)),
              (9, _host_batch(1), ActorStats(0.75, 0, 0.5, 0.5))]
    records, queued_arrays = checkpointing.queue_to_checkpoint(queued)
    actor = {"cursor": 3, "order": [2, 0, 1], "next_step": 11, "queued": records}
    arrays = {"actor0": {"bloom": {"bits": np.arange(4, dtype=np.uint8)}, "queued": queued_arrays},
              "policy": {"6": state.params}, "pending_eval": {"5": state.params}}
    return checkpointing.FullState(state, [actor], arrays, {"step": step, "n_actors": 1}), queued


def test_a_full_state_round_trips_exactly(tmp_path):
    full, queued = _full_state()
    checkpointer = checkpointing.Checkpointer(tmp_path)
    checkpointer.save(7, full)
    restored = checkpointer.restore(_train_state(seed=3), log=lambda m: None)
    checkpointer.close()
    chex.assert_trees_all_close(restored.train_state, jax.device_get(full.train_state))
    assert restored.actors[0]["order"] == [2, 0, 1] and restored.meta["format"] == checkpointing.FORMAT
    items = checkpointing.queue_from_checkpoint(restored.actors[0]["queued"], restored.arrays["actor0"]["queued"],
                                                ActorStats)
    assert [i[0] for i in items] == [7, 9]
    assert np.isnan(items[0][2].on_policy_return) and items[1][2] == queued[1][2]
    for (_, batch, _), (_, original, _) in zip(items, queued):
        assert type(batch) is learning.LearnerBatch and type(batch.samples) is type(original.samples)
        chex.assert_trees_all_equal(batch, original)
        assert all(a.dtype == b.dtype for a, b in zip(jax.tree_util.tree_leaves(batch),
                                                         jax.tree_util.tree_leaves(original)))
    chex.assert_trees_all_close(restored.arrays["pending_eval"]["5"], jax.device_get(full.train_state.params))


def _newest_step_dir(workdir, step):
    return workdir / checkpointing.LATEST / str(step)


@pytest.mark.parametrize("damage", ["truncate_arrays", "truncate_actors_json"])
def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_previous_one_used(tmp_path, damage):
    checkpointer = checkpointing.Checkpointer(tmp_path)
    for step in (5, 7):
        checkpointer.save(step, _full_state(step)[0])
    checkpointer.close()
    newest = _newest_step_dir(tmp_path, 7)
    if damage == "truncate_arrays":
        victims = sorted((p for p in (newest / "arrays").rglob("*") if p.is_file()), key=lambda p: -p.stat().st_size)
    else:
        victims = [p for p in (newest / "actors").rglob("*") if p.is_file()]
    for victim in victims[:2]:
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    messages = []
    checkpointer = checkpointing.Checkpointer(tmp_path)
    restored = checkpointer.restore(_train_state(), log=messages.append)
    assert restored.meta["step"] == 5
    assert any("skipped damaged checkpoint 7" in m for m in messages), messages
    assert (tmp_path / checkpointing.DAMAGED / "7").is_dir() and not newest.exists()
    checkpointer.save(7, _full_state(7)[0])  # the step can be written again
    checkpointer.close()


def test_no_intact_checkpoint_is_an_error_naming_each(tmp_path):
    checkpointer = checkpointing.Checkpointer(tmp_path)
    checkpointer.save(5, _full_state(5)[0])
    checkpointer.close()
    for path in (_newest_step_dir(tmp_path, 5) / "actors").rglob("*"):
        if path.is_file():
            path.write_text('{"unterminated')
    with pytest.raises(UserInputError, match="no intact checkpoint.*step 5"):
        checkpointing.Checkpointer(tmp_path).restore(_train_state(), log=lambda m: None)
    assert _newest_step_dir(tmp_path, 5).exists()  # nothing moved: the run is not silently dropped


def test_a_checkpoint_of_another_format_is_refused(tmp_path):
    checkpointer = checkpointing.Checkpointer(tmp_path)
    checkpointer.save(5, _full_state(5)[0])
    checkpointer.close()
    (meta,) = [p for p in (_newest_step_dir(tmp_path, 5) / "meta").rglob("*") if p.is_file()
               and checkpointing.FORMAT in p.read_text(errors="ignore")]
    meta.write_text(meta.read_text().replace(checkpointing.FORMAT, "mapo_jax.checkpoint/1"))
    with pytest.raises(checkpointing.CheckpointFormatError, match="mapo_jax.checkpoint/1.*another --workdir"):
        checkpointing.Checkpointer(tmp_path).restore(_train_state(), log=lambda m: None)


def test_saving_the_best_of_a_step_again_replaces_it(tmp_path):
    """A resumed run evaluates again the steps after its checkpoint; best/STEP may already exist."""
    checkpointer = checkpointing.Checkpointer(tmp_path)
    params = _train_state().params
    checkpointer.save_best(5, params, 0.5)
    checkpointer.save_best(5, params, 0.5)
    checkpointer.close()
    assert checkpointing.restore_params(tmp_path, "best")[1] == 5


# ------------------------------------------------------------------------------- one owner
def test_a_second_owner_of_a_workdir_is_refused_with_the_first_ones_pid(tmp_path):
    with checkpointing.WorkdirLock(tmp_path):
        with pytest.raises(checkpointing.WorkdirBusy, match=f"in use by another training \\(pid {os.getpid()}"):
            checkpointing.WorkdirLock(tmp_path).acquire()
    with checkpointing.WorkdirLock(tmp_path):  # released: free again
        pass


@pytest.mark.timeout(60)
def test_a_killed_owner_does_not_leave_its_workdir_locked(tmp_path):
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(REPO)!r})
        from mapo_jax.checkpointing import WorkdirLock
        WorkdirLock({str(tmp_path)!r}).acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], timeout=50)
    assert result.returncode == -signal.SIGKILL
    assert "pid" in (tmp_path / checkpointing.LOCK_FILE).read_text()
    with checkpointing.WorkdirLock(tmp_path):
        pass
