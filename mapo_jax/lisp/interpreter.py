"""The incremental interpreter: reads a program one token at a time and says which tokens may come next.

Programs are flat expressions `( head arg arg )` whose arguments are names: `all_rows`, constants
(`v0, v1, ...`: the table's properties in column order, then the question's entities) and the
variables that earlier expressions created (numbered on after the constants). A program ends with
`<END>`; its answer is the value of the last variable created.

`ProgramState` is immutable and memoises both its valid next tokens and its children, so the states
of one question form a trie: a thousand rollouts over the same question share every prefix they
have in common and each prefix is analysed once; "cloning" a state is free.

Code assistance is stronger than the original's: a token is offered only if the
expression it extends can still be completed into one whose result is non-empty (a look-ahead over
the remaining arguments), so every program built from offered tokens executes, keeps its row sets
non-empty and never reaches a dead end.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from mapo_jax.data.example import Entity
from mapo_jax.data.tables import Table
from mapo_jax.lisp import types as T
from mapo_jax.lisp.functions import FUNCTION_SETS, Function, TableView, iter_rows

UNK, START, DECODE, END = "<UNK>", "<START>", "<DECODE>", "<END>"
ERROR, OPEN, CLOSE, ALL_ROWS = "<ERROR>", "(", ")", "all_rows"
SPECIAL_TOKENS = (UNK, START, DECODE, END)


class ProgramError(ValueError):
    """A token that may not come next, or a malformed program; names the example and the token."""


@dataclass(frozen=True)
class Limits:
    """Program limits: expressions per program, memory slots, valid-token slots."""

    max_n_exp: int = 3
    max_mem: int = 60
    max_valid: int = 60

    @property
    def max_constants(self) -> int:
        """Constants kept so that a program always has room for its own variables."""
        return self.max_mem - self.max_n_exp


def decoder_vocabulary(function_set: str = "wtq", max_mem: int = 60) -> Tuple[str, ...]:
    """Decoder tokens: specials, functions, all_rows, <ERROR>, parentheses, v0..v{max_mem-1}.

    WTQ: 4 + 23 + 4 = 31 builtin tokens and 91 in all with 60 memory slots.
    """
    functions = tuple(f.name for f in FUNCTION_SETS[function_set])
    return SPECIAL_TOKENS + functions + (ALL_ROWS, ERROR, OPEN, CLOSE) + tuple(
        f"v{i}" for i in range(max_mem)
    )


class Variable(NamedTuple):
    """A named value: a constant (property or entity) or the result of an expression."""

    name: str
    type: str
    value: object
    is_constant: bool


class ProgramContext:
    """Everything fixed for one question: the table, the constants, the functions and the limits."""

    def __init__(
        self,
        table: Table,
        entities: Sequence[Entity] = (),
        function_set: str = "wtq",
        limits: Limits = Limits(),
        example_id: str = "",
        view: Optional[TableView] = None,
    ):
        self.example_id = example_id
        self.view = view or TableView(table)
        self.limits = limits
        self.function_set = function_set
        self.functions: Tuple[Function, ...] = FUNCTION_SETS[function_set]
        self.function_by_name: Dict[str, Function] = {f.name: f for f in self.functions}
        constants: List[Variable] = []
        for column in table.columns:
            ptype = T.PROPERTY_TYPE_OF_KIND[column.kind]
            constants.append(Variable(f"v{len(constants)}", ptype, column.name, True))
        for entity in entities:
            constants.append(Variable(f"v{len(constants)}", entity.type, tuple(entity.value), True))
        self.n_dropped_constants = max(0, len(constants) - limits.max_constants)
        self.constants: Tuple[Variable, ...] = tuple(constants[: limits.max_constants])
        self.all_rows = Variable(ALL_ROWS, T.ENTITY_LIST, self.view.all_rows, True)
        self.constant_by_name = {v.name: v for v in self.constants}
        self._root: Optional[ProgramState] = None
        # Memos shared by all states of this question: expression results by (function, argument
        # values), and valid-token lists by token prefix (look-ahead states are not in the trie).
        self.results: Dict[tuple, object] = {}
        self.valid_by_prefix: Dict[Tuple[str, ...], Tuple[str, ...]] = {}
        self.viable_by_prefix: Dict[Tuple[str, ...], bool] = {}
        self._final_functions: Dict[Tuple[str, ...], Tuple[Function, ...]] = {}

    def initial_state(self) -> "ProgramState":
        """The empty program (shared: it is the root of this question's trie of states)."""
        if self._root is None:
            self._root = ProgramState(self, (), None, (), 0, False)
        return self._root

    def reset_memo(self) -> None:
        """Drops the trie of explored states and the memos (frees memory once a question is done)."""
        self._root = None
        self.results = {}
        self.valid_by_prefix = {}
        self.viable_by_prefix = {}

    def final_functions(self, pending_types: Tuple[str, ...]) -> Tuple[Function, ...]:
        """Functions that can end a program while taking variables of `pending_types` (cached)."""
        cached = self._final_functions.get(pending_types)
        if cached is None:
            cached = self._final_functions[pending_types] = tuple(
                f for f in self.functions
                if f.returns != T.ENTITY_LIST and _assignable(pending_types, f.slots)
            )
        return cached

    def error(self, message: str) -> ProgramError:
        return ProgramError(f"example {self.example_id or '?'}: {message}")

    # --- rendering ---------------------------------------------------------------------------

    def describe(self, name: str) -> str:
        """A constant shown by its value (`r.points-number`, `['peru']`); other names unchanged."""
        var = self.constant_by_name.get(name)
        if var is None:
            return name
        if isinstance(var.value, str):
            return var.value
        return repr([_plain(x) for x in var.value])

    def program_text(self, tokens: Iterable[str], show_constants: bool = True) -> str:
        """`(argmax all_rows r.points-number) (hop v7 r.player-string)`: readable, one line."""
        parts: List[str] = []
        for token in tokens:
            if token == END:
                continue
            text = self.describe(token) if show_constants else token
            if token == CLOSE and parts:
                parts[-1] += ")"
            elif parts and parts[-1].endswith("("):
                parts[-1] += text
            else:
                parts.append(text)
        return " ".join(parts)

    def tokens_from_text(self, text: str) -> List[str]:
        """Program tokens from readable text, the inverse of `program_text` (plus `<END>`).

        Constants may be written by value (`['peru']`, `[40]`, `r.points-number`) or by name; a
        computed variable `vK` is the namespace name when K >= the number of constants, else the
        K-th expression's result (the convention of hand-written and generated programs).
        """
        by_value = {}
        for var in self.constants:
            key = var.value if isinstance(var.value, str) else tuple(_plain(x) for x in var.value)
            by_value.setdefault(key, var.name)
        tokens: List[str] = []
        for piece in _READABLE_TOKEN.findall(text):
            if piece in (OPEN, CLOSE, END) or piece in self.function_by_name or piece == ALL_ROWS:
                tokens.append(piece)
                continue
            if piece.startswith("["):
                try:
                    key = tuple(_plain(x) for x in ast.literal_eval(piece))
                except (ValueError, SyntaxError) as error:
                    raise self.error(f"malformed constant {piece!r} in {text!r}") from error
            else:
                key = piece
            match = _VARIABLE.match(piece)
            if match and piece not in by_value:
                index = int(match.group(1))
                n_constants = len(self.constants)
                tokens.append(piece if index >= n_constants else f"v{n_constants + index}")
            elif key in by_value:
                tokens.append(by_value[key])
            else:
                raise self.error(f"{piece!r} in {text!r} is no function, constant or variable here")
        if not tokens or tokens[-1] != END:
            tokens.append(END)
        return tokens

    # --- replay ------------------------------------------------------------------------------

    def replay(self, program: Sequence[str] | str) -> "ProgramState":
        """Runs a program (token list, or space-separated string) from the start; checks each token."""
        tokens = program.split() if isinstance(program, str) else list(program)
        state = self.initial_state()
        for position, token in enumerate(tokens):
            if state.done:
                raise self.error(f"token {token!r} at position {position} comes after <END>")
            state = state.step(token)
        return state


_READABLE_TOKEN = re.compile(r"\(|\)|\[[^\]]*\]|<END>|[^\s()\[\]]+")
_VARIABLE = re.compile(r"^v(\d+)$")


def _plain(x):
    return int(x) if isinstance(x, float) and x.is_integer() else x


class ProgramState:
    """An immutable partial program; `step(token)` returns the (memoised) next state."""

    __slots__ = ("context", "tokens", "expression", "variables", "n_exp", "done",
                 "_valid", "_children", "_heads", "_unused_memo", "_fitting")

    def __init__(self, context, tokens, expression, variables, n_exp, done):
        self.context: ProgramContext = context
        self.tokens: Tuple[str, ...] = tokens
        self.expression: Optional[Tuple[str, ...]] = expression  # (head, arg names...) while open
        self.variables: Tuple[Variable, ...] = variables  # computed variables, in creation order
        self.n_exp: int = n_exp
        self.done: bool = done
        self._valid: Optional[Tuple[str, ...]] = None
        self._children: Dict[str, ProgramState] = {}
        self._heads: Optional[Tuple[str, ...]] = None
        self._unused_memo: Optional[List[Variable]] = None
        self._fitting: Dict[frozenset, List[Variable]] = {}

    # --- names -------------------------------------------------------------------------------

    @property
    def n_var(self) -> int:
        return len(self.context.constants) + len(self.variables)

    def lookup(self, name: str) -> Variable:
        ctx = self.context
        if name == ALL_ROWS:
            return ctx.all_rows
        var = ctx.constant_by_name.get(name)
        if var is not None:
            return var
        for var in self.variables:
            if var.name == name:
                return var
        raise ctx.error(f"unknown name {name!r} in {' '.join(self.tokens)!r}")

    def namespace(self) -> Tuple[Variable, ...]:
        """Argument candidates in namespace order: all_rows, constants, computed variables."""
        return (self.context.all_rows,) + self.context.constants + self.variables

    def _fitting_names(self, slot: frozenset) -> List[Variable]:
        """Namespace entries whose type fits an argument slot (memoised per slot)."""
        fitting = self._fitting.get(slot)
        if fitting is None:
            fitting = self._fitting[slot] = [v for v in self.namespace() if T.fits(v.type, slot)]
        return fitting

    # --- code assistance ---------------------------------------------------------------------

    def valid_tokens(self) -> Tuple[str, ...]:
        """Tokens that may come next (namespace order); empty once the program is done."""
        if self._valid is None:
            memo = self.context.valid_by_prefix
            valid = memo.get(self.tokens)
            if valid is None:
                valid = memo[self.tokens] = self._compute_valid()[: self.context.limits.max_valid]
            self._valid = valid
        return self._valid

    def _compute_valid(self) -> Tuple[str, ...]:
        if self.done:
            return ()
        if self.expression is None:
            tokens = (OPEN,) if self._can_open() else ()
            if self.can_end():
                tokens += (END,)
            return tokens
        if len(self.expression) == 0:
            return self.function_heads()
        head = self.context.function_by_name[self.expression[0]]
        args = self._arg_values()
        if len(args) == head.arity:
            return (CLOSE,)
        return tuple(self._candidates(head, args, first_only=False))

    def can_end(self) -> bool:
        """`<END>` is offered only where it can score: the answer is no row set, and every
        intermediate variable was used (an unused one means reward 0 in training and an
        equivalent shorter program exists)."""
        result = self.result
        return result is not None and result.type != T.ENTITY_LIST and not self.unused_variables()

    def _room(self) -> bool:
        limits = self.context.limits
        return self.n_exp < limits.max_n_exp and self.n_var < limits.max_mem

    def _final_expression(self) -> bool:
        """Whether the next expression must be the last one (limits reached after it)."""
        limits = self.context.limits
        return self.n_exp + 1 >= limits.max_n_exp or self.n_var + 1 >= limits.max_mem

    def _can_open(self) -> bool:
        # A `num` result (count, sum, ...) is taken by no function: once created it must be the answer.
        if not self._room() or any(v.type == T.NUM for v in self._unused()):
            return False
        return bool(self.function_heads())

    def _unused(self) -> List[Variable]:
        """Computed variables no expression has used yet."""
        if self._unused_memo is None:
            used = set(self.tokens)
            self._unused_memo = [v for v in self.variables if v.name not in used]
        return self._unused_memo

    def function_heads(self) -> Tuple[str, ...]:
        """Functions that can start a completable expression here (what follows `(`)."""
        if self._heads is None:
            self._heads = tuple(
                f.name for f in self._possible_functions() if self._candidates(f, (), first_only=True)
            )
        return self._heads

    def _possible_functions(self) -> Tuple[Function, ...]:
        """Functions worth trying next: in the last expression, only those whose argument slots
        can take every unused variable and whose result can be an answer (decided by types)."""
        if not self._final_expression():
            return self.context.functions
        return self.context.final_functions(tuple(sorted(v.type for v in self._unused())))

    def _arg_values(self) -> Tuple[Tuple[object, str, str], ...]:
        return tuple((v.value, v.type, v.name) for v in map(self.lookup, self.expression[1:]))

    def _candidates(self, head: Function, args: tuple, first_only: bool) -> List[str]:
        """Names that may fill the next argument of `head` and still complete the expression."""
        view = self.context.view
        position = len(args)
        slot = head.slots[position]
        last = position + 1 == head.arity
        # In the last expression every unused variable must be an argument: fail fast.
        pending = ()
        if self._final_expression():
            given = {name for _, _, name in args}
            pending = [v.name for v in self._unused() if v.name not in given]
            if len(pending) > head.arity - position:
                return []
        out = []
        only_pending = bool(pending) and len(pending) == head.arity - position
        for var in self._fitting_names(slot):
            if only_pending and var.name not in pending:
                continue
            if not head.check(view, position, args, var.value, var.type):
                continue
            extended = args + ((var.value, var.type, var.name),)
            if last:
                ok = self._acceptable(head, extended)
            else:
                ok = bool(self._candidates(head, extended, first_only=True))
            if ok:
                out.append(var.name)
                if first_only:
                    break
        return out

    def _acceptable(self, head: Function, args: tuple) -> bool:
        """May this complete expression be written here? Its result must be non-empty and new,
        and the program must still be able to end well after it."""
        result_type = head.return_type(tuple(t for _, t, _ in args))
        names = {name for _, _, name in args}
        unused_after = [v for v in self._unused() if v.name not in names]
        final = self._final_expression()
        if final and (unused_after or result_type == T.ENTITY_LIST):
            return False  # decided by types alone: no need to run the function
        value = self._apply(head, args)
        if not _non_empty(value):
            return False
        if result_type == T.ENTITY_LIST:
            # A row set equal to one we already have adds nothing (any use could use that one).
            if value == self.context.view.all_rows or any(
                v.type == T.ENTITY_LIST and v.value == value for v in self.variables
            ):
                return False
        can_end_after = result_type != T.ENTITY_LIST and not unused_after
        if can_end_after:
            return True
        if final or result_type == T.NUM or any(v.type == T.NUM for v in unused_after):
            return False
        # The program must go on: is there a next expression that lets it end well? (exact)
        start = self.tokens if self.expression is None else self.tokens[: len(self.tokens) - len(self.expression) - 1]
        tokens = start + (OPEN, head.name) + tuple(name for _, _, name in args) + (CLOSE,)
        variable = Variable(f"v{self.n_var}", result_type, value, False)
        after = ProgramState(self.context, tokens, None, self.variables + (variable,), self.n_exp + 1, False)
        return after.viable()

    def viable(self) -> bool:
        """Whether a closed-expression state can still end well (existence only, memoised)."""
        if self.can_end():
            return True
        if not self._room() or any(v.type == T.NUM for v in self._unused()):
            return False
        if self._heads is not None:
            return bool(self._heads)
        memo = self.context.viable_by_prefix
        viable = memo.get(self.tokens)
        if viable is None:
            viable = memo[self.tokens] = any(
                self._candidates(f, (), first_only=True) for f in self._possible_functions()
            )
        return viable

    def _apply(self, head: Function, args: tuple):
        key = (head.name,) + tuple(value for value, _, _ in args)
        results = self.context.results
        if key in results:
            return results[key]
        try:
            value = results[key] = head.apply(self.context.view, *(value for value, _, _ in args))
            return value
        except Exception as error:  # code assistance should make this impossible: say where
            raise self.context.error(
                f"{head.name} failed on {' '.join(self.tokens)!r}: {type(error).__name__}: {error}"
            ) from error

    # --- reading tokens ----------------------------------------------------------------------

    def step(self, token: str) -> "ProgramState":
        """The state after reading `token`; raises ProgramError if it may not come next."""
        child = self._children.get(token)
        if child is not None:
            return child
        if token not in self.valid_tokens():
            valid = " ".join(self.valid_tokens()) or "(none: the program is done)"
            raise self.context.error(
                f"token {token!r} may not follow {' '.join(self.tokens) or '<start>'!r}; valid: {valid}"
            )
        child = self._read(token)
        self._children[token] = child
        return child

    def _read(self, token: str) -> "ProgramState":
        tokens = self.tokens + (token,)
        if token == END:
            return ProgramState(self.context, tokens, None, self.variables, self.n_exp, True)
        if token == OPEN:
            child = ProgramState(self.context, tokens, (), self.variables, self.n_exp, False)
            child._valid = self.function_heads()
            return child
        if token == CLOSE:
            head = self.context.function_by_name[self.expression[0]]
            args = self._arg_values()
            value = self._apply(head, args)
            var = Variable(f"v{self.n_var}", head.return_type(tuple(t for _, t, _ in args)), value, False)
            return ProgramState(self.context, tokens, None, self.variables + (var,), self.n_exp + 1, False)
        return ProgramState(self.context, tokens, self.expression + (token,), self.variables, self.n_exp, False)

    # --- results -----------------------------------------------------------------------------

    @property
    def result(self) -> Optional[Variable]:
        """The program's answer: the last variable created (None before any expression)."""
        return self.variables[-1] if self.variables else None

    def denotation(self) -> list:
        """The answer as a list of plain values (rows print as `row_i`, as the original did)."""
        result = self.result
        if result is None:
            return []
        if result.type == T.ENTITY_LIST:
            return [f"row_{i}" for i in iter_rows(result.value)]
        return list(result.value)

    def unused_variables(self) -> List[str]:
        """Computed variables other than the answer that no expression used ("extra work")."""
        return [v.name for v in self._unused() if v is not self.variables[-1]]

    def created_variable(self) -> Optional[str]:
        """The variable the last token created (it was `)`), else None."""
        if self.tokens and self.tokens[-1] == CLOSE:
            return self.variables[-1].name
        return None


def _assignable(types: Tuple[str, ...], slots: Tuple[frozenset, ...]) -> bool:
    """Whether values of `types` can fill distinct slots they fit (a tiny bipartite matching)."""
    if len(types) > len(slots):
        return False
    if not types:
        return True
    first, rest = types[0], types[1:]
    return any(
        T.fits(first, slot) and _assignable(rest, slots[:i] + slots[i + 1:])
        for i, slot in enumerate(slots)
    )


def _non_empty(value) -> bool:
    if isinstance(value, int):
        return value != 0
    return len(value) > 0
