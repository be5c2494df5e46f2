"""Where training's dev evaluation runs (`--eval_backend`): beam search in the evaluator thread itself
(`thread`), or in a worker process of its own (`process`), so that decoding the dev split does not
hold the learner's GIL. The evaluator thread (evaluator.py) is the same for both: it submits each
step's parameters to the function `dev_evaluation` returns and records the `EvalResult` it gets back.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import jax

from mapo_jax import evaluation
from mapo_jax.config import ModelConfig, ProgramConfig, TrainConfig
from mapo_jax.data.example import Dataset
from mapo_jax.training.process_pool import WorkerProcess, spawn_context
from mapo_jax.training.remote_pool import questions_and_tables


class DevRecipe(NamedTuple):
    """What the evaluation process rebuilds the dev split's environments and featurizer from."""

    examples: list
    tables: Dict[str, Any]
    program: ProgramConfig
    vocab: dict  # `EncoderVocab.to_json()`
    glove_file: Optional[str]
    model_config: ModelConfig
    beam_size: int

    def build(self) -> "DevEvaluation":
        return DevEvaluation(self)


class DevEvaluation:
    """The evaluation process's side: beam search on the dev questions with given parameters."""

    def __init__(self, recipe: DevRecipe):
        from mapo_jax.data.embeddings import load_glove
        from mapo_jax.data.vocab import EncoderVocab
        from mapo_jax.training.preparation import evaluation_environments, make_featurizer

        self.recipe = recipe
        self.envs = evaluation_environments(Dataset("dev", "dev", recipe.tables, recipe.examples), recipe.program)
        self.featurizer = make_featurizer(EncoderVocab.from_json(recipe.vocab), load_glove(recipe.glove_file),
                                          recipe.program)

    def evaluate(self, params) -> evaluation.EvalResult:
        return evaluation.evaluate(params, self.recipe.model_config, self.envs, self.featurizer,
                                   beam_size=self.recipe.beam_size)


class ProcessEvaluation:
    """Dev evaluation in a spawned worker process, called from the evaluator thread. A failure in the
    worker, or its death, raises `TrainingFailed` in that thread, which fails the run."""

    def __init__(self, recipe: DevRecipe):
        self._worker = WorkerProcess("the evaluator", recipe, spawn_context())
        self._worker.start()

    def __call__(self, params) -> evaluation.EvalResult:
        reply = self._worker.call("evaluate", jax.device_get(params))
        return self._worker.wait(reply, check=lambda: None)

    def stop(self) -> None:
        self._worker.stop()


def dev_evaluation(s, cfg: TrainConfig, program: ProgramConfig) -> Tuple[Callable[[Any], evaluation.EvalResult],
                                                                       Callable[[], None]]:
    """(evaluate(params) -> EvalResult on the dev split, stop()) for `cfg.eval_backend` (`s`: the run's
    `preparation.Setup`)."""
    if cfg.eval_backend == "thread":
        return (lambda params: evaluation.evaluate(params, s.model_config, s.dev_envs, s.featurizer,
                                                   beam_size=cfg.beam_size)), (lambda: None)
    examples, tables = questions_and_tables(s.dev_envs)
    evaluate = ProcessEvaluation(DevRecipe(examples, tables, program, s.vocab.to_json(), cfg.glove_file,
                                           s.model_config, cfg.beam_size))
    return evaluate, evaluate.stop
