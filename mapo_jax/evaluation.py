"""Evaluation: beam search on a split, official-rule accuracy, predictions files, beams, ensembles.

The answer of a question is the answer of the top program of its beam (size 5 in the paper). Beams
are kept per question -- programs, answers, probabilities renormalised over the beam -- so ensembles
combine models afterwards, without decoding again:

* by program (the paper's ensemble): sum the beam probabilities of identical programs over models
  and answer with the best program's answer;
* by answer: sum the probabilities of programs with the same (normalised) answer.

Numpy and the policy; the files of an evaluation (predictions, beams, summary) are written here
and their paths chosen by the caller (`launch/evaluate.py`, `launch/export_model.py`, `training/`).
"""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

from mapo_jax import decoding
from mapo_jax.batching import Featurizer
from mapo_jax.data.predictions import prediction_line
from mapo_jax.data.values import format_prediction, normalize
from mapo_jax.env import QAEnvironment
from mapo_jax.model.networks import ModelConfig

BEAM_FORMAT = "mapo_jax.beams/1"


class Candidate(NamedTuple):
    """One program of a question's beam."""

    program: str  # tokens joined by spaces (re-playable)
    text: str  # readable form, e.g. `(argmax all_rows r.points-number) (hop v7 r.player-string)`
    log_prob: float
    prob: float  # renormalised over the beam
    answer: Tuple[str, ...]  # as it would be printed in a predictions file
    correct: bool  # official matching against the gold answer (False when there is none)


class QuestionResult(NamedTuple):
    id: str
    question: str
    beam: List[Candidate]  # best first; empty when no program finished

    @property
    def answer(self) -> Tuple[str, ...]:
        return self.beam[0].answer if self.beam else ()

    @property
    def correct(self) -> bool:
        return bool(self.beam) and self.beam[0].correct

    def to_json(self) -> dict:
        return {"id": self.id, "question": self.question, "correct": self.correct,
                "beam": [c._asdict() | {"answer": list(c.answer)} for c in self.beam]}

    @classmethod
    def from_json(cls, data: dict) -> "QuestionResult":
        beam = [Candidate(**(c | {"answer": tuple(c["answer"])})) for c in data["beam"]]
        return cls(data["id"], data["question"], beam)


class EvalResult(NamedTuple):
    results: List[QuestionResult]
    seconds: float

    @property
    def accuracy(self) -> float:
        return accuracy(self.results)

    @property
    def oracle_accuracy(self) -> float:
        """Fraction of questions with a correct program anywhere in the beam (an upper bound for
        re-ranking)."""
        return sum(any(c.correct for c in r.beam) for r in self.results) / max(len(self.results), 1)


def candidates(env: QAEnvironment, hypotheses) -> List[Candidate]:
    """Beam hypotheses with their readable programs, answers and correctness (the environment's reward)."""
    out = []
    for h in hypotheses:
        state = env.context.replay(h.tokens)
        answer = tuple(format_prediction(x) for x in state.denotation())
        correct = env.reward(state) == 1.0
        out.append(Candidate(" ".join(h.tokens), env.context.program_text(h.tokens), h.log_prob, h.prob,
                             answer, correct))
    return out


def evaluate(params, config: ModelConfig, envs: Sequence[QAEnvironment], featurizer: Featurizer,
             beam_size: int = 5, batch_size: int = 32,
             progress: Optional[Callable[[int, int], None]] = None) -> EvalResult:
    """Beam search on every environment; accuracy uses the official matching rules.

    `progress(done, total)` is called after each batch (for long splits)."""
    start = time.perf_counter()
    results: List[QuestionResult] = []
    for first in range(0, len(envs), batch_size):
        chunk = list(envs[first: first + batch_size])
        inputs = decoding.encoder_inputs(featurizer, chunk)
        beams = decoding.beam_search(params, config, chunk, inputs, beam_size)
        for env, hypotheses in zip(chunk, beams):
            results.append(QuestionResult(env.example.id, " ".join(env.example.tokens),
                                          candidates(env, hypotheses)))
            env.release_memory()  # the next evaluation has other parameters: the memo would only grow
        if progress is not None:
            progress(len(results), len(envs))
    return EvalResult(results, time.perf_counter() - start)


def decode_dataset(policy, dataset, beam_size: int = 5,
                   progress: Optional[Callable[[int, int], None]] = None) -> List[QuestionResult]:
    """Beam search with a restored policy (`checkpointing.RestoredPolicy`, a run's or a package's) on
    every question of `dataset`, with the policy's own function set and limits. A package first
    learns the split's words it has no id for (`pretrained.with_words`)."""
    from mapo_jax.env import Vocabulary
    from mapo_jax.pretrained import with_words
    from mapo_jax.training import make_environments

    policy = with_words(policy, dataset.examples)
    program = policy.program_config
    envs = make_environments(dataset, False, Vocabulary(program.function_set, program.max_mem), program)
    return evaluate(policy.params, policy.model_config, envs, policy.featurizer, beam_size=beam_size,
                    progress=progress).results


def dataset_targets(dataset) -> Tuple[Dict[str, list], List[str]]:
    """(gold Values by id, ids to score) of a loaded split: what is scored when no question file
    with gold answers is given (a run's own dev part, the toy data)."""
    return {ex.id: ex.gold_values() for ex in dataset.examples}, [ex.id for ex in dataset.examples]


def official_score(output_dir: Union[str, Path], results: Sequence[QuestionResult], summary: dict,
                   targets: Dict[str, list], expected: Sequence[str], gold_name: str):
    """Writes OUTPUT_DIR/predictions.tsv, beams.jsonl and summary.json, and scores the predictions
    file exactly as the official evaluator scores one (`predictions.Score`); the summary gets
    `official_accuracy`. evaluate.py and the exporter report accuracies only from here, so none can
    disagree with the file a user would send to the official evaluator."""
    from mapo_jax.data.predictions import score_predictions

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = dict(summary, questions=len(results), beam_accuracy=accuracy(results))
    write_predictions(output_dir / "predictions.tsv", results)
    write_beams(output_dir / "beams.jsonl", results, summary)
    score = score_predictions(output_dir / "predictions.tsv", targets, expected, gold_name)
    summary["official_accuracy"] = score.accuracy
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return score


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------


def write_predictions(path: Union[str, Path], results: Sequence[QuestionResult]) -> None:
    """An official-format predictions file (id, then the answer's items, tab-separated); a question
    with no finished program gets an empty answer, which the official evaluator scores as wrong."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in results:
            f.write(prediction_line(r.id, r.answer) + "\n")


def write_beams(path: Union[str, Path], results: Sequence[QuestionResult], meta: Optional[dict] = None) -> None:
    """JSONL: a header line `{"format": ..., **meta}`, then one question's beam per line."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"format": BEAM_FORMAT, **(meta or {})}) + "\n")
        for r in results:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")


def read_beams(path: Union[str, Path]) -> Tuple[dict, List[QuestionResult]]:
    with open(path, encoding="utf-8") as f:
        header = json.loads(f.readline())
        if header.get("format") != BEAM_FORMAT:
            raise ValueError(f"{path}: not a beams file of format {BEAM_FORMAT} (header {header})")
        return header, [QuestionResult.from_json(json.loads(line)) for line in f if line.strip()]


# ------------------------------------------------------------------------------------------------
# Ensembles
# ------------------------------------------------------------------------------------------------


def _answer_key(answer: Sequence[str]) -> Tuple[str, ...]:
    """Answers that the official matching treats alike: normalised, order-free."""
    return tuple(sorted(normalize(a) for a in answer))


def ensemble(models: Sequence[Sequence[QuestionResult]], by: str = "program") -> List[QuestionResult]:
    """Combines models' beams question by question (models must cover the same questions).

    `by="program"`: the paper's ensemble -- probabilities of identical programs are summed over models
    and the best program answers. `by="answer"`: probabilities of candidates with the same normalised
    answer are summed, and the best answer's most probable program answers. The combined beam is
    sorted by the summed score and renormalised; ties keep the first model's order.
    """
    if by not in ("program", "answer"):
        raise ValueError(f"ensemble by 'program' or 'answer', got {by!r}")
    if not models:
        raise ValueError("an ensemble needs at least one model")
    by_id = [{r.id: r for r in results} for results in models]
    ids = [r.id for r in models[0]]
    for k, table in enumerate(by_id[1:], start=2):
        if set(table) != set(ids):
            raise ValueError(f"model {k} was evaluated on different questions than model 1")
    combined = []
    for example_id in ids:
        scores: Dict[tuple, float] = collections.defaultdict(float)
        best: Dict[tuple, Candidate] = {}
        for table in by_id:
            for c in table[example_id].beam:
                key = (c.program,) if by == "program" else _answer_key(c.answer)
                scores[key] += c.prob
                if key not in best or c.prob > best[key].prob:
                    best[key] = c
        total = sum(scores.values()) or 1.0
        order = sorted(scores, key=lambda key: -scores[key])  # stable: first seen wins ties
        beam = [best[key]._replace(prob=scores[key] / total) for key in order]
        first = by_id[0][example_id]
        combined.append(QuestionResult(example_id, first.question, beam))
    return combined


def accuracy(results: Sequence[QuestionResult]) -> float:
    """Fraction of questions whose top program is correct (0.0 for no questions)."""
    return sum(r.correct for r in results) / max(len(results), 1)
