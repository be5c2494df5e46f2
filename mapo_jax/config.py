"""Typed, validated configuration, and the one place where command-line flags become configs.

Every launcher (`launch/*.py`) calls `define_flags()`, so all of them accept the same flags and a
single flagfile (`wtq.flags`, `toy.flags`) drives every command; flags a command does not use are
simply ignored by it. An unknown flag is an error (absl lists the flag's name).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional

from mapo_jax.data.annotate import AnnotationOptions

DATASETS = ("toy", "wtq")


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
            raise ValueError(f"unknown dataset {self.dataset!r}: valid datasets are {', '.join(DATASETS)}")
        if self.max_tokens_for_number < 1:
            raise ValueError("max_tokens_for_number must be >= 1")
        if not 0.0 <= self.min_fraction_for_ordered <= 1.0:
            raise ValueError("min_fraction_for_ordered must be in [0, 1]")

    @property
    def table_options(self) -> dict:
        return {
            "max_tokens_for_number": self.max_tokens_for_number,
            "min_fraction_for_ordered": self.min_fraction_for_ordered,
        }

    def replace(self, **changes) -> "DataConfig":
        return dataclasses.replace(self, **changes)


_DEFINED = False


def define_flags() -> None:
    """Registers every flag of the project (idempotent)."""
    global _DEFINED
    if _DEFINED:
        return
    from absl import flags

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
    flags.DEFINE_integer("explore_seed", explore.seed, "Warm start: seed.")
    flags.DEFINE_integer("explore_processes", explore.processes, "Warm start: worker processes (0: all cores).")
    flags.DEFINE_bool("trigger_words", explore.trigger_words, "Warm start: allow a function only if a trigger word occurs.")
    flags.DEFINE_bool("degree_words", explore.degree_words, "Warm start: comparatives/superlatives stand in for POS-tag triggers.")
    flags.DEFINE_enum("explored_set", explore.explored_set, ["set", "bloom"], "Warm start: exact set or Bloom filter of explored prefixes.")
    _DEFINED = True


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
            raise ValueError(f"the toy dataset has one split pair: use --split=1 (got {split})")
        return [f"train{split}", f"dev{split}"] if config.dataset == "wtq" else ["train", "dev"]
    return [split]


def warm_start_config_from_flags(flag_values=None):
    """The WarmStartConfig the parsed flags describe."""
    from absl import flags

    from mapo_jax.explore.warm_start import WarmStartConfig

    f = flag_values or flags.FLAGS
    return WarmStartConfig(
        rollouts_per_example=f.rollouts_per_example,
        seed=f.explore_seed,
        processes=f.explore_processes,
        trigger_words=f.trigger_words,
        degree_words=f.degree_words,
        explored_set=f.explored_set,
        function_set=f.function_set,
        max_n_exp=f.max_n_exp,
        max_mem=f.max_mem,
        max_valid=f.max_valid,
    )
