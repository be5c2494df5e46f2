"""The roles of the training loop on their own, with fakes instead of models: the run state and its
stored layout, the evaluator and its dev history, the thread actor pool, and launch/train.py's Ctrl-C
handler. The whole loop is exercised through `train_and_evaluate` in test_training.py."""

import subprocess
import sys
import threading
from pathlib import Path

import chex
import jax
import numpy as np
import pytest

from mapo_jax import checkpointing, evaluation
from mapo_jax.acting import ActorStats
from mapo_jax.config import TrainConfig
from mapo_jax.errors import TrainingFailed
from mapo_jax.metrics import MetricsWriter
from mapo_jax.training import evaluator as evaluator_lib
from mapo_jax.training import run_state
from mapo_jax.training.actor_pool import ActorState, ThreadActorPool

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_checkpointing import _full_state, _host_batch, _train_state  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- run state


def test_a_stored_full_state_reads_as_a_run_state():
    """The layout of format mapo_jax.checkpoint/2 as earlier versions wrote it (no wall_time, no best)."""
    full, queued = _full_state()
    state = run_state.from_checkpoint(full)
    assert state.step == int(full.train_state.step) and state.n_actors == 1
    (actor,) = state.actors
    assert actor.actor == {"cursor": 3, "order": [2, 0, 1]} and actor.next_step == 11
    assert [item[0] for item in actor.queued] == [7, 9] and actor.queued[1][2] == queued[1][2]
    assert list(state.policy_versions) == [6] and [step for step, _ in state.pending_evaluations] == [5]
    assert state.best == {} and state.wall_time == 0.0


def test_a_run_state_round_trips_through_a_checkpoint(tmp_path):
    train_state = _train_state()._replace(step=np.int32(7))
    queued = [(7, _host_batch(0), ActorStats(float("nan"), 2, 0.5, 0.25))]
    actors = [ActorState({"cursor": 3, "order": [2, 0, 1]}, {"bits": np.arange(4, dtype=np.uint8)}, 9, queued),
              ActorState({"cursor": 0, "order": [0]}, {"bits": np.zeros(4, np.uint8)}, 8, [])]
    state = run_state.RunState(7, train_state, actors, {6: train_state.params},
                               [(0, train_state.params), (5, train_state.params)],
                               {"step": 5, "dev/accuracy": 0.25}, 12.5, 2)
    full = run_state.to_checkpoint(state)
    assert full.actors[0]["next_step"] == 9 and "queued" not in full.arrays["actor1"]
    assert full.meta == {"n_actors": 2, "best": {"step": 5, "dev/accuracy": 0.25}, "wall_time": 12.5, "step": 7}
    checkpointer = checkpointing.Checkpointer(tmp_path)
    checkpointer.save(7, full)
    restored = run_state.from_checkpoint(checkpointer.restore(_train_state(seed=3), log=lambda m: None))
    checkpointer.close()
    assert (restored.step, restored.best, restored.wall_time, restored.n_actors) == (7, state.best, 12.5, 2)
    assert [a.actor for a in restored.actors] == [a.actor for a in actors]
    assert [a.next_step for a in restored.actors] == [9, 8]
    assert [[item[0] for item in a.queued] for a in restored.actors] == [[7], []]
    chex.assert_trees_all_equal(restored.actors[0].queued[0][1], queued[0][1])
    np.testing.assert_array_equal(restored.actors[0].bloom["bits"], np.arange(4))
    assert list(restored.policy_versions) == [6] and [s for s, _ in restored.pending_evaluations] == [0, 5]
    chex.assert_trees_all_close(restored.train_state, jax.device_get(train_state))


# --------------------------------------------------------------------------- evaluator


def _result(accuracy: float) -> evaluation.EvalResult:
    """An evaluation of 10 questions with the given accuracy (multiples of 0.1)."""
    n_correct = round(accuracy * 10)
    results = [evaluation.QuestionResult(f"q{i}", "", [evaluation.Candidate("p", "p", 0.0, 1.0, ("a",), i < n_correct)])
               for i in range(10)]
    return evaluation.EvalResult(results, 0.0)


class _BestCheckpoints:
    def __init__(self):
        self.saved = []

    def save_best(self, step, params, accuracy):
        self.saved.append((step, params, accuracy))


def _evaluator(evaluate, tmp_path=None, history=evaluator_lib.DevHistory()):
    messages = []
    checkpoints = _BestCheckpoints() if tmp_path is not None else None
    outputs = evaluator_lib.DevOutputs(MetricsWriter(None), checkpoints, tmp_path, lambda: 3.0, messages.append, 5)
    return evaluator_lib.Evaluator(evaluate, outputs, history), messages, checkpoints


def test_the_evaluator_records_results_in_order_and_keeps_the_first_best(tmp_path):
    accuracies = {"p0": 0.5, "p10": 0.7, "p20": 0.7}
    evaluator, messages, checkpoints = _evaluator(lambda params: _result(accuracies[params]), tmp_path)
    evaluator.start()
    for step in (0, 10, 20):
        evaluator.submit(step, f"p{step}")
    evaluator.finish()
    evaluator.raise_if_failed()
    history = evaluator.history()
    assert [r["step"] for r in history.records] == [0, 10, 20]
    assert history.best == {"step": 10, "dev/accuracy": 0.7}
    assert history.records[0] == {"step": 0, "wall_time": 3.0, "dev/accuracy": 0.5, "dev/oracle_accuracy": 0.5,
                                  "dev/seconds": 0.0}
    assert [(step, params) for step, params, _ in checkpoints.saved] == [(0, "p0"), (10, "p10")]
    assert evaluation.read_beams(tmp_path / "dev_beams.jsonl")[0]["step"] == 10
    assert messages[2] == "[eval] step 20: dev accuracy 0.7000 (beam 5; oracle 0.7000; 0 s)  best 0.7000 @ 10"
    assert not evaluator.pending() and evaluator.backlog == 0


def test_the_evaluator_shows_pending_work_and_the_learner_waits_for_earlier_steps():
    gate, polls = threading.Event(), []
    evaluator, _, _ = _evaluator(lambda params: gate.wait(10) and _result(0.5))
    evaluator.start()
    evaluator.submit(0, "p0")
    evaluator.submit(10, "p10")
    pending, history = evaluator.snapshot()
    assert [step for step, _ in pending] == [0, 10] and history.records == ()

    def poll():
        polls.append(1)
        gate.set()

    records = evaluator.records_before(10, while_waiting=poll)
    assert [r["step"] for r in records] == [0] and polls
    evaluator.finish()


def test_an_evaluator_failure_is_raised_with_its_traceback():
    def failing(params):
        raise RuntimeError("beam search exploded")

    evaluator, _, _ = _evaluator(failing)
    evaluator.start()
    evaluator.submit(0, "p0")
    with pytest.raises(TrainingFailed, match="(?s)the evaluator failed:.*Traceback.*beam search exploded"):
        evaluator.records_before(10, while_waiting=evaluator.raise_if_failed)


def test_a_resumed_run_owes_the_evaluations_without_a_record():
    history = evaluator_lib.dev_history([{"step": 0, "dev/accuracy": 0.5}, {"step": 5, "train/loss": 1.0},
                                         {"step": 10, "dev/accuracy": 0.5}])
    assert [r["step"] for r in history.records] == [0, 10] and history.best == {"step": 0, "dev/accuracy": 0.5}
    assert evaluator_lib.due_evaluations([(10, "a"), (20, "b")], history.records) == [(20, "b")]


# --------------------------------------------------------------------------- actor pool


class _FakeActor:
    """Batches that name the parameters they were made with; fails at batch `fail_at` if given."""

    def __init__(self, name, fail_at=None):
        self.name, self.made, self.fail_at, self.buffer = name, 0, fail_at, []

    def make_batch(self, params):
        if self.made == self.fail_at:
            raise RuntimeError(f"{self.name} exploded")
        self.made += 1
        return f"{self.name}:{params}", ActorStats(1.0, 0, 0.5, 0.0)

    def state_dict(self):
        return {"made": self.made}, {"bits": np.zeros(1, np.uint8)}


def _pool(actors, **changes):
    cfg = TrainConfig(n_actors=len(actors), publish_every=1, policy_lag=0, queue_size=1).replace(**changes)
    return ThreadActorPool(actors, list(range(len(actors))), [[] for _ in actors], cfg)


def test_the_thread_pool_serves_batch_s_from_actor_s_mod_n_with_version_s():
    pool = _pool([_FakeActor("a"), _FakeActor("b")])
    pool.publish(0, "v0")
    pool.start()
    try:
        assert pool.next_batch(0, while_waiting=lambda: None)[:2] == (0, "a:v0")
        pool.publish(1, "v1")
        assert pool.next_batch(1, while_waiting=lambda: None)[:2] == (1, "b:v1")
        pool.publish(2, "v2")
        assert pool.next_batch(2, while_waiting=lambda: None)[:2] == (0, "a:v2")
        with pool.paused():  # both actors wait for versions not published yet (3 and 4)
            state = pool.collect()
        assert [(a.actor["made"], a.next_step, a.queued) for a in state.actors] == [(2, 4, []), (1, 3, [])]
        assert state.policy_versions == {2: "v2"} and pool.queue_depth() == 0
    finally:
        pool.stop()


def test_a_run_made_before_a_setting_existed_resumes_with_its_default(tmp_path):
    """config.json of an older version lacks later settings: they read as their defaults (what the
    run did), so it resumes; a changed learning setting or a key this version lacks is refused."""
    import json

    from mapo_jax.config import DataConfig, ModelConfig, ProgramConfig, configs_to_json
    from mapo_jax.errors import UserInputError
    from mapo_jax.training.workdir import prepare_workdir

    record = configs_to_json(DataConfig(), ProgramConfig(), ModelConfig(), TrainConfig())
    older = json.loads(json.dumps(record))
    del older["train"]["outside_draw_weight"], older["data"]["annotation"]["word_ordinals"]
    (tmp_path / "config.json").write_text(json.dumps(older))
    assert prepare_workdir(tmp_path, record) is True
    assert "outside_draw_weight" in json.loads((tmp_path / "config.json").read_text())["train"]
    changed = configs_to_json(DataConfig(), ProgramConfig(), ModelConfig(), TrainConfig(outside_draw_weight="original"))
    with pytest.raises(UserInputError, match="train.outside_draw_weight: 'unbiased' -> 'original'"):
        prepare_workdir(tmp_path, changed)
    newer = json.loads(json.dumps(record))
    newer["train"]["a_later_setting"] = 1
    (tmp_path / "config.json").write_text(json.dumps(newer))
    with pytest.raises(UserInputError, match="does not know"):
        prepare_workdir(tmp_path, record)
    (tmp_path / "config.json").write_text(json.dumps(dict(record, format="mapo_jax.run_config/0")))
    with pytest.raises(UserInputError, match=r"config.json: run config format .*/0.* use another --workdir"):
        prepare_workdir(tmp_path, record)


def test_every_backend_builds_its_actors_from_the_run_settings():
    """`actor_settings` is what threads, worker processes and Ray actors all pass to `Actor`."""
    import inspect

    from mapo_jax.acting import Actor
    from mapo_jax.training.actor_pool import actor_settings

    cfg = TrainConfig(questions_per_step=7, seed=2, n_actors=4, bloom_capacity=400, systematic_exploration=False,
                      outside_draw_weight="original")
    settings = actor_settings(3, cfg, n_devices=2)
    assert settings == dict(objective="mapo", questions_per_step=7, systematic_exploration=False, seed=2003,
                            bloom_capacity=100, n_devices=2, outside_draw_weight="original")
    assert set(settings) <= set(inspect.signature(Actor).parameters)
    assert actor_settings(0, TrainConfig(objective="mml"), 1)["objective"] == "mml"


def test_a_failing_actor_stops_the_pool_with_its_traceback():
    pool = _pool([_FakeActor("a", fail_at=1)])
    pool.publish(0, "v0")
    pool.start()
    try:
        pool.next_batch(0, while_waiting=lambda: None)
        pool.publish(1, "v1")
        with pytest.raises(TrainingFailed, match="(?s)actor 0 failed:.*Traceback.*a exploded"):
            pool.next_batch(1, while_waiting=lambda: None)
    finally:
        pool.stop()


def test_the_learner_can_abort_a_wait_for_a_batch():
    pool = _pool([_FakeActor("a")])
    pool.start()  # nothing published: no batch will come
    try:
        with pytest.raises(ZeroDivisionError):
            pool.next_batch(0, while_waiting=lambda: 1 / 0)
    finally:
        pool.stop()


# --------------------------------------------------------------------------- launch/train.py


def test_ctrl_c_in_the_launcher_asks_once_then_aborts():
    script = """
import signal, sys
sys.path.insert(0, "launch")
import train
before = signal.getsignal(signal.SIGINT)  # Python's handler, or SIG_IGN in a background job
with train.stop_on_ctrl_c() as stop:
    signal.raise_signal(signal.SIGINT)
    print("stop requested:", stop.is_set())
    try:
        signal.raise_signal(signal.SIGINT)
    except KeyboardInterrupt:
        print("aborted")
print("handler restored:", signal.getsignal(signal.SIGINT) is before)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        "[train] Ctrl-C: finishing this step and writing a checkpoint (Ctrl-C again to abort)",
        "stop requested: True", "aborted", "handler restored: True"]
