"""Actor backends (`--actor_backend=threads|processes|ray`) on a shrunken toy run: every backend makes the
same batches, so a fixed seed gives the same training metrics with each, a run checkpointed with one
backend resumes with another, and a lost worker fails the run quickly with a message that names it.

Dev evaluations in the learner's process are faked (they are not compared); `--eval_backend=process` is
checked against the evaluator thread on a few questions."""

import importlib.util
import multiprocessing
import os
import signal
import time
import warnings

import pytest

from mapo_jax import evaluation
from mapo_jax.config import DataConfig, TrainConfig
from mapo_jax.errors import TrainingFailed, UserInputError
from mapo_jax.training import train_and_evaluate

from conftest import small_config, train_records

REAL_EVALUATE = evaluation.evaluate
RAY_MISSING = importlib.util.find_spec("ray") is None
needs_ray = pytest.mark.skipif(RAY_MISSING, reason="ray is not installed (pip install ray==2.60.0)")


@pytest.fixture(scope="module", autouse=True)
def shared_compilation_cache(tmp_path_factory):
    """Workers (spawned with this environment) reuse each other's compiled XLA programs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("xla_cache")))
        patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        patch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
        yield


@pytest.fixture(autouse=True)
def no_dev_evaluation(monkeypatch):
    empty = evaluation.EvalResult([evaluation.QuestionResult("q", "", [])], 0.0)
    monkeypatch.setattr(evaluation, "evaluate", lambda *args, **kwargs: empty)


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module's Ray runs (they use it rather than start their own)."""
    if RAY_MISSING:
        pytest.skip("ray is not installed (pip install ray==2.60.0)")
    import ray

    with warnings.catch_warnings():  # JAX's warning on fork: Ray forks and execs at once
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 ** 2, log_to_driver=False)
    yield ray
    ray.shutdown()


def config(toy_programs, backend: str, **changes) -> TrainConfig:
    return small_config(toy_programs, **{"checkpoint_every": 10, "n_actors": 2, "actor_backend": backend, **changes})


def train(toy_programs, workdir, backend: str, log=lambda m: None, **changes) -> dict:
    return train_and_evaluate(DataConfig(dataset="toy"), config(toy_programs, backend, **changes), log=log,
                              workdir=str(workdir))


@pytest.fixture(scope="module")
def threads_run(toy_programs, tmp_path_factory):
    """The reference: 30 steps with actor threads."""
    workdir = tmp_path_factory.mktemp("threads")
    train(toy_programs, workdir, "threads")
    records = train_records(workdir)
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    return records


@pytest.mark.timeout(300)
def test_worker_processes_make_the_same_run_as_threads(toy_programs, threads_run, tmp_path):
    train(toy_programs, tmp_path, "processes")
    assert train_records(tmp_path) == threads_run
    assert not multiprocessing.active_children()  # the workers ended with the run


@needs_ray
@pytest.mark.timeout(300)
def test_ray_actors_make_the_same_run_as_threads(toy_programs, threads_run, local_ray, tmp_path):
    train(toy_programs, tmp_path, "ray")
    assert train_records(tmp_path) == threads_run
    assert local_ray.is_initialized()  # an instance it did not start is left running


@needs_ray
@pytest.mark.timeout(300)
def test_a_run_resumes_with_another_backend(toy_programs, threads_run, local_ray, tmp_path):
    """Checkpointed with threads at step 10, with Ray actors at 20, finished with worker processes: each
    pool collects its actors' states and queued batches, and the next one goes on from them exactly."""
    messages = []
    for backend, last_step in (("threads", 10), ("ray", 20), ("processes", 30)):
        result = train(toy_programs, tmp_path, backend, log=messages.append, n_steps=last_step)
        assert result["step"] == last_step
    assert sum("restored 2 actors" in m for m in messages) == 2
    assert train_records(tmp_path) == threads_run


def _kill_on_first_log_line(kill):
    """A log callback that calls `kill()` once, when the first training-metrics line comes (step 5)."""
    killed = []

    def log(message):
        if message.startswith("[train] step") and not killed:
            killed.append(time.perf_counter())
            kill()

    return log, killed


@pytest.mark.timeout(300)
def test_a_killed_worker_process_fails_the_run(toy_programs, tmp_path):
    def kill_a_worker():
        os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)

    log, killed = _kill_on_first_log_line(kill_a_worker)
    with pytest.raises(TrainingFailed, match=r"actor \d's worker process \(pid \d+\) died: killed by signal SIGKILL"):
        train(toy_programs, tmp_path, "processes", log=log, n_steps=10_000)
    assert killed and time.perf_counter() - killed[0] < 10
    assert not multiprocessing.active_children()


@needs_ray
@pytest.mark.timeout(300)
def test_a_killed_ray_actor_fails_the_run(toy_programs, local_ray, tmp_path):
    def kill_an_actor():
        (name,) = [actor["name"] for actor in local_ray.util.list_named_actors(all_namespaces=True)
                   if actor["name"].startswith(f"mapo-actor-1-{os.getpid()}-")]
        local_ray.kill(local_ray.get_actor(name))

    log, killed = _kill_on_first_log_line(kill_an_actor)
    with pytest.raises(TrainingFailed, match=r"actor 1's Ray actor was lost"):
        train(toy_programs, tmp_path, "ray", log=log, n_steps=10_000)
    assert killed and time.perf_counter() - killed[0] < 10


@pytest.mark.timeout(120)
def test_a_worker_that_fails_sends_its_traceback(glove):
    """An exception in a worker (here: building an actor without questions) reaches the learner with
    the worker's traceback."""
    from mapo_jax.config import ModelConfig, ProgramConfig
    from mapo_jax.data.vocab import SPECIAL_TOKENS, EncoderVocab
    from mapo_jax.training.process_pool import ProcessBackend
    from mapo_jax.training.remote_pool import ActorRecipe, Published

    vocab = EncoderVocab(SPECIAL_TOKENS).to_json()
    recipe = ActorRecipe(0, [], {}, ProgramConfig(), vocab, None, ModelConfig(), {}, {}, {})
    worker = ProcessBackend().actor(recipe)
    worker.start()
    try:
        reply, _ = worker.make_batch(Published(0, {}, lambda params: params))
        failure = "(?s)actor 0 failed in its worker process.*Traceback.*needs at least one training question"
        with pytest.raises(TrainingFailed, match=failure):
            worker.wait(reply, check=lambda: None)
    finally:
        worker.stop()


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc (Linux)")
def test_a_worker_process_runs_xla_on_one_cpu_thread():
    """Workers are one per core: XLA's CPU thread pool in a worker has one thread, not one per core
    of the machine (two workers on two cores then make about twice the batches of one)."""
    from mapo_jax.training.process_pool import WORKER_XLA_THREADS, WorkerProcess, spawn_context
    from worker_probe import ProbeRecipe

    worker = WorkerProcess("probe", ProbeRecipe(), spawn_context())
    worker.start()
    try:
        seen = worker.wait(worker.call("xla_setup"), check=lambda: None)
    finally:
        worker.stop()
    assert seen == {"platform": "cpu", "xla_threads": WORKER_XLA_THREADS}


@pytest.mark.timeout(180)
def test_the_evaluation_process_gives_the_evaluator_thread_s_results(glove):
    """--eval_backend=process: the same beams as beam search in this process, and a clear error once
    the process is gone."""
    import jax

    from mapo_jax.config import ProgramConfig
    from mapo_jax.model import policy
    from mapo_jax.training import setup
    from mapo_jax.training.eval_process import dev_evaluation

    cfg = TrainConfig(min_count=1, hidden_size=32, eval_backend="process")
    s = setup(DataConfig(dataset="toy"), cfg)
    s = s._replace(dev_envs=s.dev_envs[:12])
    params = policy.init(jax.random.PRNGKey(0), s.model_config, s.pretrained)
    evaluate, stop = dev_evaluation(s, cfg, ProgramConfig())
    try:
        assert evaluate(params).results == REAL_EVALUATE(params, s.model_config, s.dev_envs, s.featurizer).results
        os.kill(multiprocessing.active_children()[0].pid, signal.SIGKILL)
        with pytest.raises(TrainingFailed, match=r"the evaluator's worker process \(pid \d+\) died: killed by signal"):
            evaluate(params)
    finally:
        stop()


def test_the_actor_backend_is_checked_and_may_change_on_resume():
    from mapo_jax.config import RESUMABLE_CHANGES

    with pytest.raises(UserInputError, match="unknown actor backend 'mpi'"):
        TrainConfig(actor_backend="mpi")
    with pytest.raises(UserInputError, match="ray_address is for --actor_backend=ray"):
        TrainConfig(ray_address="auto")
    with pytest.raises(UserInputError, match="unknown eval backend 'gpu'"):
        TrainConfig(eval_backend="gpu")
    assert TrainConfig(actor_backend="ray", ray_address="auto").ray_address == "auto"
    assert {"actor_backend", "ray_address", "eval_backend"} <= set(RESUMABLE_CHANGES)
