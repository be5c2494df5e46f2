"""The actor-learner training system on shrunken toy configurations.

Learning, reproducibility, resuming and failure handling are checked through `train_and_evaluate`,
the function `launch/train.py` calls. Every run shares one warm start (made once per session).
"""

import math
import shutil
import threading

import pytest

from mapo_jax import acting, checkpointing, evaluation, learning
from mapo_jax.config import DataConfig, ProgramConfig, TrainConfig
from mapo_jax.errors import UserInputError
from mapo_jax.metrics import read_metrics
from mapo_jax.training import TrainingFailed, train_and_evaluate

from conftest import small_config, train_records


def test_mapo_learns_the_toy_dataset(toy_programs, tmp_path):
    """The quick start's code path, shrunk: beam-search dev accuracy must rise well above its start."""
    messages = []
    result = train_and_evaluate(
        DataConfig(dataset="toy"),
        small_config(toy_programs, n_steps=160, eval_every=80, questions_per_step=25, n_actors=2),
        log=messages.append, workdir=str(tmp_path))
    history = result["history"]
    assert [h["step"] for h in history] == [0, 80, 160]
    assert any("warm start" in m for m in messages)
    assert history[-1]["dev/accuracy"] >= history[0]["dev/accuracy"] + 0.15  # learning, not luck
    records = train_records(tmp_path)
    assert [r["step"] for r in records] == list(range(5, 161, 5))
    assert all(math.isfinite(r["train/loss"]) for r in records)
    assert records[-1]["actor/buffer_coverage"] > 0.5
    assert result["best"]["dev/accuracy"] == max(h["dev/accuracy"] for h in history)
    # the run directory: config, vocabulary, TensorBoard, the best beams and predictions
    for name in ("config.json", "vocab.json", "dev_beams.jsonl", "dev_predictions.tsv"):
        assert (tmp_path / name).exists(), name
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    header, beams = evaluation.read_beams(tmp_path / "dev_beams.jsonl")
    assert header["step"] == result["best"]["step"] and len(beams) == 160


@pytest.mark.parametrize("n_actors", [1, 2])
def test_a_fixed_seed_gives_identical_runs(toy_programs, tmp_path, n_actors):
    """Batch s is always sampled with the same parameter version, whatever the thread timing."""
    runs = []
    for name in ("a", "b"):
        train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=30, n_actors=n_actors),
                           log=lambda m: None, workdir=str(tmp_path / name))
        runs.append(train_records(tmp_path / name))
    assert len(runs[0]) == 6
    assert runs[0] == runs[1]
    other_seed = tmp_path / "seed1"
    train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=30, n_actors=n_actors, seed=1),
                       log=lambda m: None, workdir=str(other_seed))
    assert train_records(other_seed) != runs[0]  # the comparison can fail


def test_a_stopped_run_resumes_where_it_was(toy_programs, tmp_path):
    """Stopped at step 20 (as after a kill following the step-20 checkpoint), the same command goes on
    to the same metrics an uninterrupted run has."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=40, checkpoint_every=10,
                                                        eval_every=20, n_actors=2),
                       log=lambda m: None, workdir=str(straight))
    train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=20, checkpoint_every=10,
                                                        eval_every=20, n_actors=2),
                       log=lambda m: None, workdir=str(resumed))
    messages = []
    result = train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=40, checkpoint_every=10,
                                                                 eval_every=20, n_actors=2),
                                log=messages.append, workdir=str(resumed))
    assert any("resuming" in m and "step 20" in m for m in messages)
    assert result["step"] == 40
    assert train_records(resumed) == train_records(straight)
    # no record is duplicated by the restart (evaluation lines land when the evaluator finishes,
    # so the file is not in step order)
    kinds = [(r["step"], "dev/accuracy" in r) for r in read_metrics(resumed)]
    assert len(kinds) == len(set(kinds))
    dev = [r["dev/accuracy"] for r in read_metrics(resumed) if "dev/accuracy" in r]
    assert dev == [r["dev/accuracy"] for r in read_metrics(straight) if "dev/accuracy" in r]


def test_a_run_refuses_other_settings_in_its_workdir(toy_programs, tmp_path):
    train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=2), log=lambda m: None,
                       workdir=str(tmp_path))
    with pytest.raises(ValueError, match="learning_rate"):
        train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=4, learning_rate=0.01),
                           log=lambda m: None, workdir=str(tmp_path))


def test_an_actor_exception_stops_the_run_with_its_traceback(toy_programs, monkeypatch):
    calls = []
    original = acting.Actor.make_batch

    def failing(self, params):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("interpreter exploded")
        return original(self, params)

    monkeypatch.setattr(acting.Actor, "make_batch", failing)
    with pytest.raises(TrainingFailed, match="(?s)actor 0 failed.*Traceback.*interpreter exploded"):
        train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=100), log=lambda m: None)


def test_an_evaluator_exception_stops_the_run(toy_programs, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("beam search exploded")

    monkeypatch.setattr(evaluation, "evaluate", failing)
    with pytest.raises(TrainingFailed, match="(?s)evaluator failed.*beam search exploded"):
        train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=10_000), log=lambda m: None)


def test_a_nan_loss_names_its_step(toy_programs, monkeypatch):
    make_loss = learning.make_policy_loss

    def poisoned_loss(*args, **kwargs):
        loss_fn = make_loss(*args, **kwargs)

        def poisoned(params, batch_and_rng):
            import jax.numpy as jnp

            loss, metrics = loss_fn(params, batch_and_rng)
            loss = loss * jnp.nan
            return loss, {**metrics, "loss": loss}

        return poisoned

    monkeypatch.setattr(learning, "make_policy_loss", poisoned_loss)
    with pytest.raises(FloatingPointError, match="loss is nan at learner step 1 "):
        train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=10), log=lambda m: None)


# --------------------------------------------------------------------------- actor-learner plumbing


def test_policy_version_lags_and_never_runs_ahead_of_the_learner():
    assert [acting.policy_version(s, 2, 2) for s in range(8)] == [0, 0, 0, 0, 2, 2, 4, 4]
    assert [acting.policy_version(s, 1, 0) for s in range(4)] == [0, 1, 2, 3]  # on-policy
    for step in range(50):
        for every in (1, 2, 5):
            for lag in (0, 1, 3):
                version = acting.policy_version(step, every, lag)
                assert version % every == 0 and step - lag - every < version <= max(step - lag, 0)


def test_rows_per_batch_fits_the_objective_and_the_devices():
    assert acting.rows_per_batch("mapo", 25) == 50
    assert acting.rows_per_batch("mml", 25) == 25
    assert acting.rows_per_batch("mml", 25, n_devices=2) == 26


def test_parameter_server_serves_versions_and_drops_old_ones():
    server = acting.ParameterServer(publish_every=2, policy_lag=2)
    server.publish(10, "p10")  # a resumed run: older versions map to the first one
    assert server.get(4, lambda: False) == "p10"
    server.publish(12, "p12")
    server.publish(14, "p14")
    assert server.get(12, lambda: False) == "p12"
    with pytest.raises(acting.Stopped):
        server.get(16, lambda: True)
    server.publish(16, "p16")
    server.publish(18, "p18")  # now every actor needs >= 16
    with pytest.raises(RuntimeError, match="dropped"):
        server.get(12, lambda: False)


def test_batch_queue_is_bounded_and_fifo():
    queue = acting.BatchQueue(2)
    queue.put((0, "a", None))
    queue.put((2, "b", None))
    with pytest.raises(acting.Stopped):
        queue.wait_for_room(lambda: True)
    assert [item[0] for item in queue.snapshot()] == [0, 2]
    assert queue.get(lambda: None)[1] == "a"
    queue.wait_for_room(lambda: False)
    with pytest.raises(ZeroDivisionError):  # the learner's check runs while it waits
        acting.BatchQueue(1).get(lambda: 1 / 0)


def test_train_config_knows_every_objective_and_rejects_bad_values():
    with pytest.raises(ValueError, match="unknown objective"):
        TrainConfig(objective="ppo")
    with pytest.raises(ValueError, match="alpha"):
        TrainConfig(alpha=1.5)
    with pytest.raises(ValueError, match="n_actors"):
        TrainConfig(n_actors=0)
    for bad in (dict(learning_rate=-1.0), dict(learning_rate=0.0), dict(max_grad_norm=0.0),
                dict(entropy_coeff=float("nan")), dict(outside_draw_weight="biased"), dict(dropout=1.0)):
        with pytest.raises(UserInputError, match=next(iter(bad))):
            TrainConfig(**bad)
    TrainConfig(entropy_coeff=-0.01)  # the original's entropy penalty
    with pytest.raises(UserInputError, match="is for objective=mapo"):
        TrainConfig(objective="mml", outside_draw_weight="original")


# --------------------------------------------------------------------------- faults of a stopped run


def _dev_steps(workdir):
    return sorted(r["step"] for r in read_metrics(workdir) if "dev/accuracy" in r)


@pytest.mark.timeout(600)
def test_a_run_killed_before_its_first_checkpoint_starts_over_cleanly(toy_programs, tmp_path):
    """A first attempt that died after its step-0 evaluation (best/0 written) but before any regular
    checkpoint: the same command starts over, with one step-0 record and no 'best/0 exists' error."""
    cfg = small_config(toy_programs, n_steps=5)
    train_and_evaluate(DataConfig(dataset="toy"), cfg, log=lambda m: None, workdir=str(tmp_path))
    shutil.rmtree(tmp_path / checkpointing.LATEST)  # as if killed before the step-5 checkpoint
    messages = []
    train_and_evaluate(DataConfig(dataset="toy"), cfg, log=messages.append, workdir=str(tmp_path))
    assert any("starting over from step 0" in m for m in messages)
    assert _dev_steps(tmp_path) == [0, 5]
    assert [r["step"] for r in train_records(tmp_path)] == [5]


@pytest.mark.timeout(600)
def test_an_evaluation_cut_short_is_done_by_the_resumed_run(toy_programs, tmp_path, monkeypatch):
    """A stop request (Ctrl-C in launch/train.py; or a kill after the checkpoint) while dev step 10 is
    being evaluated: the checkpoint keeps that evaluation's parameters and the resumed run writes its
    record."""
    real_evaluate = evaluation.evaluate
    release, stop = threading.Event(), threading.Event()

    def stalls_at_the_second_evaluation(*args, **kwargs):
        if stalls_at_the_second_evaluation.calls == 1:
            stop.set()  # the learner finishes its step and checkpoints
            release.wait(120)
            raise RuntimeError("evaluation abandoned")  # never reaches metrics.jsonl
        stalls_at_the_second_evaluation.calls += 1
        return real_evaluate(*args, **kwargs)

    stalls_at_the_second_evaluation.calls = 0
    cfg = small_config(toy_programs, n_steps=20, eval_every=10, checkpoint_every=1000, n_actors=2)
    monkeypatch.setattr(evaluation, "evaluate", stalls_at_the_second_evaluation)
    try:
        first = train_and_evaluate(DataConfig(dataset="toy"), cfg, log=lambda m: None, workdir=str(tmp_path),
                                   stop=stop)
    finally:
        release.set()
    assert first["interrupted"] and 10 not in _dev_steps(tmp_path)
    monkeypatch.setattr(evaluation, "evaluate", real_evaluate)
    result = train_and_evaluate(DataConfig(dataset="toy"), cfg, log=lambda m: None, workdir=str(tmp_path))
    assert result["step"] == 20 and _dev_steps(tmp_path) == [0, 10, 20]


def test_a_workdir_has_one_owner(toy_programs, tmp_path):
    with checkpointing.WorkdirLock(tmp_path):
        with pytest.raises(checkpointing.WorkdirBusy, match="in use by another training"):
            train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=2), log=lambda m: None,
                               workdir=str(tmp_path))
    assert not (tmp_path / "metrics.jsonl").exists()  # refused before touching anything


def test_a_workdir_that_is_a_file_is_named(toy_programs, tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(UserInputError, match="is a file, not a directory"):
        train_and_evaluate(DataConfig(dataset="toy"), small_config(toy_programs, n_steps=2), log=lambda m: None,
                           workdir=str(tmp_path / "run"))


def test_the_program_settings_reach_environments_model_and_warm_start(glove):
    """--max_n_exp and friends used to change only the warm start: training built default Limits."""
    from mapo_jax.training.preparation import setup, warm_start_settings

    program = ProgramConfig(max_n_exp=2, max_mem=40, max_valid=30)
    s = setup(DataConfig(dataset="toy"), TrainConfig(min_count=1, hidden_size=16), program=program)
    assert {env.limits for env in s.train_envs + s.dev_envs} == {program.limits}
    assert {env.context.function_set for env in s.train_envs} == {"wtq"}
    assert (s.model_config.max_variables, s.model_config.max_mem, s.model_config.max_valid) == (2, 40, 30)
    warm = warm_start_settings(None, program)
    assert (warm.max_n_exp, warm.max_mem, warm.max_valid, warm.function_set) == (2, 40, 30, "wtq")
    with pytest.raises(UserInputError, match="max_mem"):
        ProgramConfig(max_n_exp=3, max_mem=3)


def test_evaluations_without_improvement_counts_from_the_first_best():
    from mapo_jax.training import evaluations_without_improvement

    history = [{"step": s, "dev/accuracy": a} for s, a in [(20, 0.6), (0, 0.5), (10, 0.6), (30, 0.55)]]
    assert evaluations_without_improvement(history) == 2
    assert evaluations_without_improvement(history[:2]) == 0
    assert evaluations_without_improvement([]) == 0


@pytest.mark.timeout(600)
def test_early_stopping_stops_at_the_same_step_and_stays_stopped(toy_programs, tmp_path, monkeypatch):
    """Dev accuracies 0.5, 0.6, 0.6, 0.5 at steps 0..30 with patience 2: the run stops at step 40 (decided
    from evaluations before 40 only), and the same command then finds nothing left to do."""
    accuracies = [0.5, 0.6, 0.6, 0.5, 0.4, 0.3, 0.2]
    calls = iter(accuracies)
    monkeypatch.setattr(evaluation, "evaluate", lambda *a, **k: _fake_result(next(calls)))
    cfg = small_config(toy_programs, n_steps=100, eval_every=10, early_stop_evals=2)
    result = train_and_evaluate(DataConfig(dataset="toy"), cfg, log=lambda m: None, workdir=str(tmp_path))
    assert result["early_stopped"] and result["step"] == 40
    assert _dev_steps(tmp_path) == [0, 10, 20, 30, 40] and result["best"]["step"] == 10
    again = train_and_evaluate(DataConfig(dataset="toy"), cfg, log=lambda m: None, workdir=str(tmp_path))
    assert again["early_stopped"] and again["step"] == 40 and _dev_steps(tmp_path) == [0, 10, 20, 30, 40]


def _fake_result(accuracy: float) -> evaluation.EvalResult:
    """An evaluation of 10 questions with the given accuracy (multiples of 0.1)."""
    n_correct = round(accuracy * 10)
    results = [evaluation.QuestionResult(f"q{i}", "", [evaluation.Candidate("p", "p", 0.0, 1.0, ("a",), i < n_correct)])
               for i in range(10)]
    return evaluation.EvalResult(results, 0.0)
