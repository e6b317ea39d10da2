"""Abstract values: what an expression holds, as far as the code proves it.

A `Value` is a small, immutable description of a runtime object: an optax
transformation, an Equinox module of a known class, a filtered tree, a list of
values, a Python scalar, an array of some dtype, a function... `None` (the Python
object, not a Value) means "the code does not say", and rules stay quiet on it.

A module's *leaves* (what `jax.tree_util.tree_leaves` would give) are asked of the
Semantics (`Semantics.leaves(value)`), which knows the classes; this file holds the
vocabulary of leaf kinds and what each library call returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import libcst as cst

if TYPE_CHECKING:
    from eqxlint.semantics.inference import Semantics


@dataclass(frozen=True)
class Value:
    """What an expression holds, as far as the code says.

    kind is one of:
      "optimizer"  an optax GradientTransformation; `factories` lists the optax
                   factories it is built from (e.g. ("chain", "adam")).
      "module"     an Equinox module instance; `cls` is "equinox.nn.MLP" or
                   "<local>.Net" for a class of the project (`owner` is the
                   Semantics of the file that defines it; `node` the constructor call).
      "filtered"   the result of `eqx.filter` or the first half of `eqx.partition`;
                   `source` is the tree that was filtered.
      "static"     the second half of `eqx.partition`.
      "state"      an `eqx.nn.State`.
      "tuple", "list"  a container with known `elements`.
      "dict"       a dict literal; `keys` and `elements` pair up.
      "function"   a function object (an activation, a lambda, a def; `node` is the
                   FunctionDef or Lambda when the file defines it).
      "leaf"       a pytree leaf that is not a container: `leaf` is one of LEAF_KINDS.
      "none"       the Python None (an empty subtree for JAX, not a leaf).
      "state_dict" weights keyed by name: `.state_dict()`, `torch.load`, safetensors,
                   `np.load`; "state_dict_values" its `.values()`/`.items()`.
      "leaves"     a list of tree leaves (`jax.tree_util.tree_leaves`, ...); `source` is
                   the tree, `leaf` the kind of every leaf when known; "treedef".
      "mapped"     `jax.tree.map(f, tree)` whose every leaf is of kind `leaf` (`id` gives
                   Python ints).
    """

    kind: str
    node: Optional[cst.CSTNode] = field(default=None, repr=False, compare=False)
    cls: Optional[str] = None
    factories: tuple[str, ...] = ()
    source: Optional[cst.BaseExpression] = field(default=None, repr=False, compare=False)
    elements: tuple[Optional["Value"], ...] = ()
    # For "optimizer": the optax call that built it (for keyword arguments).
    call: Optional[cst.Call] = field(default=None, repr=False, compare=False)
    # For "leaf": one of LEAF_KINDS.
    leaf: Optional[str] = None
    # For "dict": the literal keys (None where a key is not a string literal).
    keys: tuple[Optional[str], ...] = ()
    # For "module" of a project class: the Semantics of the file that defines it.
    owner: Optional["Semantics"] = field(default=None, repr=False, compare=False)
    # For "module": the Semantics where `node` (the constructor call) sits.
    site: Optional["Semantics"] = field(default=None, repr=False, compare=False)

    @property
    def signature(self) -> tuple[object, ...]:
        """What two values must share to be taken for the same thing."""
        return (self.kind, self.cls, self.factories, self.leaf, len(self.elements))


# The vocabulary of leaf kinds, shared with eqxlint/knowledge (measured tables use it).
INEXACT_ARRAY = "inexact_array"
INTEGER_ARRAY = "integer_array"
BOOL_ARRAY = "bool_array"
ARRAY = "array"  # an array whose dtype the code does not show
PYTHON_INT = "python_int"
PYTHON_FLOAT = "python_float"
PYTHON_BOOL = "python_bool"
PYTHON_COMPLEX = "python_complex"
STR = "str"
FUNCTION = "function"
OBJECT = "object"

LEAF_KINDS = (INEXACT_ARRAY, INTEGER_ARRAY, BOOL_ARRAY, ARRAY, PYTHON_INT, PYTHON_FLOAT,
              PYTHON_BOOL, PYTHON_COMPLEX, STR, FUNCTION, OBJECT)
ARRAY_KINDS = frozenset({INEXACT_ARRAY, INTEGER_ARRAY, BOOL_ARRAY, ARRAY})
PYTHON_SCALAR_KINDS = frozenset({PYTHON_INT, PYTHON_FLOAT, PYTHON_BOOL, PYTHON_COMPLEX})
# Leaves that `eqx.filter(·, eqx.is_inexact_array)` drops and an optimizer cannot take.
NON_ARRAY_KINDS = frozenset({PYTHON_INT, PYTHON_FLOAT, PYTHON_BOOL, PYTHON_COMPLEX, STR,
                             FUNCTION, OBJECT})
# Leaves that `eqx.filter(·, eqx.is_array_like)` keeps although they are not arrays.
ARRAY_LIKE_SCALARS = frozenset({PYTHON_INT, PYTHON_FLOAT, PYTHON_BOOL, PYTHON_COMPLEX})


def leaf(kind: str, node: Optional[cst.CSTNode] = None) -> Value:
    return Value("leaf", node, leaf=kind)


def describe_leaf(kind: str) -> str:
    """How a message names a leaf kind: "a function", "a Python `int`"."""
    return {
        INEXACT_ARRAY: "a floating-point array", INTEGER_ARRAY: "an integer array",
        BOOL_ARRAY: "a boolean array", ARRAY: "an array",
        PYTHON_INT: "a Python `int`", PYTHON_FLOAT: "a Python `float`",
        PYTHON_BOOL: "a Python `bool`", PYTHON_COMPLEX: "a Python `complex`",
        STR: "a `str`", FUNCTION: "a function", OBJECT: "an object that is not an array",
    }.get(kind, kind)


@dataclass(frozen=True)
class Leaf:
    """One leaf a value provably holds: where (`CNN.layers[2]`), what, and why we know."""

    path: str
    kind: str
    shown_by: Optional[str] = None  # the source text that gives it, e.g. "jax.nn.relu"
    # Measured from an equinox.nn layer's defaults (a Dropout's rate), not the user's code.
    from_library: bool = False

    def phrase(self) -> str:
        """"`CNN.layers[2]` is a function (`jax.nn.relu`)"."""
        what = describe_leaf(self.kind)
        if self.shown_by:
            what += f" (`{self.shown_by}`)"
        return f"`{self.path}` is {what}"


# ---------------------------------------------------------------------------
# What library calls return (qualified names, after import resolution).

# Calls whose result maps weight names to arrays.
STATE_DICT_LOADERS = frozenset({
    "torch.load", "safetensors.torch.load_file", "safetensors.numpy.load_file",
    "safetensors.flax.load_file", "safetensors.torch.load", "safetensors.numpy.load",
    "numpy.load",
})
LEAVES_FUNCTIONS = frozenset({"jax.tree_util.tree_leaves", "jax.tree.leaves", "jax.tree_leaves"})
FLATTEN_FUNCTIONS = frozenset({"jax.tree_util.tree_flatten", "jax.tree.flatten",
                               "jax.tree_flatten"})
TREE_MAP_FUNCTIONS = frozenset({"jax.tree_util.tree_map", "jax.tree.map", "jax.tree_map"})
# Functions of these namespaces are functions (activations, jnp.ravel, ...).
FUNCTION_NAMESPACES = ("jax.nn.", "jax.numpy.", "jax.lax.", "jax.scipy.", "numpy.", "math.",
                       "equinox.nn.functional.", "jax.random.", "operator.")
# Names of those namespaces that are numbers, not functions.
FLOAT_CONSTANTS = frozenset({"inf", "nan", "pi", "e", "euler_gamma", "tau", "NINF", "PINF",
                             "NAN", "Inf", "NaN"})


def is_dtype_name(name: str) -> bool:
    """`float32`, `int8`, `bool_`, `bfloat16`, `dtype`, `newaxis`: not functions."""
    stem = name.rstrip("0123456789_")
    return stem in ("float", "int", "uint", "bool", "complex", "bfloat", "dtype", "newaxis",
                    "double", "single", "half", "object", "str", "generic", "number",
                    "integer", "floating", "inexact", "signedinteger", "unsignedinteger")


# Array constructors: their result is an array; its dtype from the `dtype=` argument
# or, for these, from the literal they are given.
ARRAY_FROM_LITERAL = frozenset({"jax.numpy.array", "jax.numpy.asarray", "numpy.array",
                                "numpy.asarray"})
INEXACT_ARRAY_FACTORIES = frozenset({
    "jax.numpy.zeros", "jax.numpy.ones", "jax.numpy.empty", "jax.numpy.full", "jax.numpy.eye",
    "jax.numpy.linspace", "jax.numpy.zeros_like", "jax.numpy.ones_like",
    "jax.random.normal", "jax.random.uniform", "jax.random.truncated_normal",
    "numpy.zeros", "numpy.ones", "numpy.empty", "numpy.linspace", "numpy.eye",
    "jax.nn.initializers.glorot_uniform", "numpy.random.randn", "numpy.random.rand",
})
INTEGER_ARRAY_FACTORIES = frozenset({"jax.random.randint", "jax.numpy.arange", "numpy.arange",
                                     "jax.random.categorical", "jax.random.permutation"})
# Calls that return their argument's structure unchanged: (argument position, name).
STRUCTURE_PRESERVING = {
    "equinox.apply_updates": (0, "model"),
    "equinox.nn.inference_mode": (0, "model"),
    "equinox.tree_inference": (0, "pytree"),
    "equinox.tree_at": (1, "pytree"),
    "equinox.tree_deserialise_leaves": (1, "like"),
    "dataclasses.replace": (0, "obj"),
    "equinox.filter_eval_shape": None,  # the result is abstract: not followed
    "copy.deepcopy": (0, "x"),
    "copy.copy": (0, "x"),
}


def dtype_kind(dtype: Optional[str]) -> Optional[str]:
    """"jax.numpy.int32" -> integer array; "float32" -> inexact; unknown -> None."""
    if dtype is None:
        return None
    name = dtype.rsplit(".", 1)[-1]
    if name.startswith("bool"):
        return BOOL_ARRAY
    if name.startswith(("int", "uint")):
        return INTEGER_ARRAY
    if name.startswith(("float", "bfloat", "complex")):
        return INEXACT_ARRAY
    return None


def literal_leaf(node: cst.BaseExpression) -> Optional[str]:
    """The leaf kind of a literal: 1 -> python_int, 0.5 -> python_float, "a" -> str."""
    if isinstance(node, cst.Integer):
        return PYTHON_INT
    if isinstance(node, cst.Float):
        return PYTHON_FLOAT
    if isinstance(node, cst.Imaginary):
        return PYTHON_COMPLEX
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
        return STR
    if isinstance(node, cst.Name) and node.value in ("True", "False"):
        return PYTHON_BOOL
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, (cst.Minus, cst.Plus)):
        return literal_leaf(node.expression)
    return None


def array_of_literal(node: cst.BaseExpression) -> Optional[str]:
    """`jnp.array(<this>)`: the array kind a literal (or nested list of them) gives."""
    kind = literal_leaf(node)
    if kind == PYTHON_FLOAT or kind == PYTHON_COMPLEX:
        return INEXACT_ARRAY
    if kind == PYTHON_INT:
        return INTEGER_ARRAY
    if kind == PYTHON_BOOL:
        return BOOL_ARRAY
    if isinstance(node, (cst.List, cst.Tuple)) and node.elements:
        kinds = {array_of_literal(e.value) for e in node.elements}
        if INEXACT_ARRAY in kinds:
            return INEXACT_ARRAY
        if len(kinds) == 1:
            return kinds.pop()
    return ARRAY
