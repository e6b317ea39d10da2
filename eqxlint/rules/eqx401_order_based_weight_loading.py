"""EQX401: weights paired with a model's leaves by position instead of by name."""

from __future__ import annotations

import ast
import re
from typing import Callable, Iterator, Optional

import libcst as cst

from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, Good, Rule
from eqxlint.rules.first_look import FirstLook, call_argument, qualified_names, walk
from eqxlint.rules.value_flow import ValueFirstLook
from eqxlint.semantics import CallSite, Semantics, argument, descendants, positional_args
from eqxlint.semantics.project import imports_project_module
from eqxlint.semantics.values import FLATTEN_FUNCTIONS, LEAVES_FUNCTIONS

HINT = ("Load by name: `model = eqxlint.interop.load_state_dict(model, state_dict, "
        "key_map=...)`, which checks every shape")


class OrderBasedWeightLoading(Rule):
    code = "EQX401"
    name = "order-based-weight-loading"
    summary = "PyTorch weights paired with the model's leaves by position, not by name"
    # A state dict (`.state_dict()`, or a loader: torch.load, load_file, np.load), its
    # `.values()`/`.items()`, and leaves (tree_leaves, jax.tree.leaves, tree_flatten):
    # written in the file or in a project module it imports (values are followed there).
    # may_fire reads them closer (see _STATE_DICT, _VALUES).
    triggers = ((b"state_dict", b"load", PROJECT_IMPORT), (b"values", b"items", PROJECT_IMPORT),
                (b"leaves", b"flatten", PROJECT_IMPORT))
    what_it_does = """
        Checks for weights from a PyTorch `state_dict()`, `torch.load`, safetensors'
        `load_file` or `np.load` paired with a model's leaves by position:
        `zip(sd.values(), jax.tree_util.tree_leaves(model))` (either order, `.items()`
        too), `jax.tree_util.tree_unflatten(treedef, list(sd.values()))`,
        `eqx.tree_at(lambda m: jax.tree.leaves(m), model, list(sd.values()))`, and
        `leaves[i]` inside `for i, (k, v) in enumerate(sd.items())`.
    """
    why_bad = """
        The two orders are not the same, and nothing checks them: safetensors sorts its
        keys (`layers.10` before `layers.2`), BatchNorm statistics live in
        `eqx.nn.State` rather than the model, PyTorch registers some tensors the model
        does not have. A `.reshape(leaf.shape)` hides a transposed weight. Every weight
        can land on the wrong layer without a sound.
    """
    example = """
        import torch

        sd = torch.load("weights.pt")
        leaves, treedef = jax.tree_util.tree_flatten(model)
        model = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in sd.values()])
    """
    use_instead = """
        import torch
        from eqxlint.interop import load_state_dict

        sd = torch.load("weights.pt")
        model = load_state_dict(model, sd, key_map={"layers.0.weight": "fc1.weight"})
    """
    fix_safety = "No automatic fix: names must be matched, and `key_map` says how."
    runtime = """
        `check_state_dict(model, state_dict, key_map=...)` compares by name and lists every
        problem with the pytree path and the key. `eqxlint.interop.load_state_dict` loads
        by name, checks shapes, applies Equinox's layouts (a Conv bias is `(out, 1, 1)`),
        and raises listing every problem; `eqxlint.interop.state_dict(model, state)` names
        every array the way PyTorch does (`layers.0.weight`).
    """
    real_error = "(none: the weights load without a sound)"
    known_limits = """
        The state dict and the leaves must be visible in the same file (a state dict
        passed in as a parameter is not followed). Quiet when keys are matched by name.
    """

    bad_examples = (
        Bad("""
            import jax
            import numpy as np

            sd = dict(np.load("weights.npz"))
            leaves, treedef = jax.tree_util.tree_flatten(model)
            new_leaves = [jax.numpy.asarray(w) for w, _ in zip(sd.values(), leaves)]  # expect: EQX401
            model = jax.tree_util.tree_unflatten(treedef, new_leaves)
        """, "the loader wrapped in dict(...)"),
        Bad("""
            import jax
            import torch

            state_dict = torch.load("model.pt")
            weights = {k: v.numpy() for k, v in state_dict.items()}
            leaves = jax.tree_util.tree_leaves(model)
            pairs = list(zip(weights.values(), leaves))  # expect: EQX401
        """, "converted to numpy in a dict comprehension: still weights by name"),
        Bad("""
            import jax
            import torch

            sd = torch.load("weights.pt")
            leaves = jax.tree_util.tree_leaves(model)
            new_leaves = [v.numpy() for v, leaf in zip(sd.values(), leaves)]  # expect: EQX401
        """, "zip of values and leaves"),
        Bad("""
            import jax
            from safetensors.numpy import load_file

            weights = load_file("model.safetensors")
            for leaf, (name, value) in zip(jax.tree.leaves(model), weights.items()):  # expect: EQX401
                assert leaf.shape == value.shape
        """, "safetensors (sorted keys), items(), leaves first"),
        Bad("""
            import jax
            import jax.numpy as jnp

            sd = torch_model.state_dict()
            leaves, treedef = jax.tree_util.tree_flatten(model)
            model = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(v) for v in sd.values()])  # expect: EQX401
        """, "unflatten with the state dict's values"),
        Bad("""
            import equinox as eqx
            import jax
            import torch

            sd = torch.load(path)
            model = eqx.tree_at(lambda m: jax.tree.leaves(m), model, list(sd.values()))  # expect: EQX401
        """, "tree_at over all leaves"),
        Bad("""
            import jax
            import numpy as np

            weights = np.load("weights.npz")
            leaves = jax.tree_util.tree_leaves(model)
            for i, (name, value) in enumerate(weights.items()):
                leaves[i] = value.reshape(leaves[i].shape)  # expect: EQX401
        """, "enumerate over items, reshape hides a transpose"),
        Bad("""
            import jax
            import torch

            def load(model, path):
                state = torch.load(path, map_location="cpu")
                params = list(state.values())
                leaves = jax.tree.leaves(model)
                return [p.numpy() for p, _ in zip(params, leaves)]  # expect: EQX401
        """, "values listed first, inside a function"),
        Bad("""
            import jax.tree
            from torch import load as read

            def restore(model, path):
                weights = read(path)
                flat, treedef = jax.tree.flatten(model)
                return jax.tree.unflatten(treedef, list(weights.values()))  # expect: EQX401
        """, "torch.load imported under another name"),
        Bad("""
            import jax
            import torch

            def weights_of(path):
                return list(torch.load(path).values())

            class Loader:
                def __init__(self, model):
                    self.leaves = jax.tree_util.tree_leaves(model)

                def pair(self, path):
                    return zip(weights_of(path), self.leaves)  # expect: EQX401
        """, "the values from a helper, the leaves from an attribute of self"),
        Bad("""
            import jax
            import torch

            def pair(values, leaves):
                return list(zip(values, leaves))  # expect: EQX401

            sd = torch.load("weights.pt")
            pairs = pair(sd.values(), jax.tree.leaves(model))
        """, "both given by the caller"),
    )
    good_examples = (
        Good("""
            from eqxlint.interop import load_state_dict
            import torch

            model = load_state_dict(model, torch.load("weights.pt"))
        """, "by name"),
        Good("""
            import jax
            import torch

            sd = torch.load("weights.pt")
            flat, treedef = jax.tree_util.tree_flatten_with_path(model)
            names = [jax.tree_util.keystr(path) for path, _ in flat]
            values = [sd[key_map[name]] for name in names]
        """, "matched by name through a key map"),
        Good("""
            import jax

            a = jax.tree.leaves(model_a)
            b = jax.tree.leaves(model_b)
            pairs = list(zip(a, b))
        """, "two models' leaves (same structure)"),
        Good("""
            import torch

            sd = torch.load("weights.pt")
            for (name, value), other in zip(sd.items(), other_sd.items()):
                pass
        """, "two state dicts"),
        Good("""
            import jax

            leaves, treedef = jax.tree_util.tree_flatten(model)
            model = jax.tree_util.tree_unflatten(treedef, [x * 2 for x in leaves])
        """, "unflatten with the model's own leaves"),
        Good("""
            import jax

            def load(sd, model):
                return list(zip(sd.values(), jax.tree.leaves(model)))
        """, "a state dict passed in: not followed"),
        Good("""
            import torch

            sd = torch.load("weights.pt")
            for i, (name, value) in enumerate(sd.items()):
                print(i, name, value.shape)
        """, "enumerate without the model's leaves"),
        Good("""
            import jax
            import torch

            sd = torch.load("weights.pt")
            shapes = {k: v.shape for k, v in sd.items()}
            leaves = jax.tree.leaves(model)
        """, "both present, never paired"),
        Good("""
            import jax
            import torch

            sd = torch.load("weights.pt")
            leaves = jax.tree.leaves(model)
            names = [name for name in sd]
            for name, leaf in zip(names, leaves):
                print(name, leaf.shape)
        """, "the keys of a state dict zipped with leaves: names, not values"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """The words a finding needs, then a pairing written in the file.

        Sound: a finding needs a state dict (`.state_dict()` with no arguments, or a
        loader: torch.load, safetensors' load_file/load, numpy.load, named through an
        import of torch, safetensors or numpy, and so a `load` in the text), its
        `.values()` or `.items()` (no arguments), and leaves (a function whose name holds
        `leaves` or `flatten`), each written in the file or in a project module it
        imports (the semantics follows values there); and the check reports only at a
        call of `zip` (the builtin name) given one positional argument that may be a
        state dict's values and another that may be leaves, at `tree_unflatten` /
        `jax.tree.unflatten` given leaves that may be a state dict's values, at
        `eqx.tree_at` whose `where` is a lambda calling a leaves function and whose
        replacement may be a state dict's values (the names as the file's imports resolve
        them), and at a `for` over `enumerate(x)`, `x` such values, whose target starts
        with a name that subscripts leaves in the loop's body (so the file says zip,
        unflatten, tree_at or enumerate). What may be which is `_PairedValues`'s answer,
        which follows values as the semantics does (ValueFirstLook: names, parameters
        through their callers, returns, `self` attributes, project imports), blind to
        scopes. A file `ast` cannot parse says yes.
        """
        if not cls.static or not _PAIRING_WORD.search(source):
            return False
        for needed in (_has_state_dict, _has_values, _has_leaves):
            if not _in_file_or_project(source, look, needed):
                return False
        look = look or FirstLook(source)
        tree = look.tree()
        table = look.imports()
        if tree is None or table is None:
            return True
        return _pairing_written(tree, table, source, look)

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            finding = _check_zip(semantics, site) or _check_unflatten(semantics, site) \
                or _check_tree_at(semantics, site)
            if finding is not None:
                yield finding
        yield from _check_enumerate(semantics)


def _kind(semantics: Semantics, site: CallSite, node: cst.BaseExpression) -> Optional[str]:
    value = semantics.infer(node, at=site)
    return value.kind if value is not None else None


def _finding(node: cst.CSTNode, pairing: str, anchor: Optional[cst.Call] = None) -> Finding:
    return Finding(node=node, message=(f"{pairing} pairs state-dict weights with the model's "
                                       f"leaves by position; the two orders differ and "
                                       f"nothing checks the shapes"),
                   hint=HINT, anchor=anchor)


def _check_zip(semantics: Semantics, site: CallSite) -> Optional[Finding]:
    if not (isinstance(site.node.func, cst.Name) and site.node.func.value == "zip"
            and "zip" not in semantics.imports):
        return None
    kinds = {_kind(semantics, site, arg) for arg in positional_args(site.node)}
    if {"state_dict_values", "leaves"} <= kinds:
        return _finding(site.node, "`zip` of a state dict and `tree_leaves`")
    return None


def _check_unflatten(semantics: Semantics, site: CallSite) -> Optional[Finding]:
    if site.qualname not in ("jax.tree_util.tree_unflatten", "jax.tree.unflatten"):
        return None
    leaves = argument(site.node, 1, "leaves")
    if leaves is not None and _from_state_dict_values(semantics, site, leaves):
        return _finding(site.node, "`tree_unflatten` with a state dict's values")
    return None


def _check_tree_at(semantics: Semantics, site: CallSite) -> Optional[Finding]:
    if site.qualname != "equinox.tree_at":
        return None
    where, replace = argument(site.node, 0, "where"), argument(site.node, 2, "replace")
    if not isinstance(where, cst.Lambda) or replace is None:
        return None
    if semantics.qualname(where.body.func) not in ("jax.tree_util.tree_leaves", "jax.tree.leaves") \
            if isinstance(where.body, cst.Call) else True:
        return None
    if _from_state_dict_values(semantics, site, replace):
        return _finding(site.node, "`eqx.tree_at` over every leaf with a state dict's values")
    return None


def _from_state_dict_values(semantics: Semantics, site: CallSite,
                            node: cst.BaseExpression) -> bool:
    """`sd.values()`, `list(sd.values())`, or a comprehension over either."""
    if isinstance(node, (cst.ListComp, cst.GeneratorExp)):
        node = node.for_in.iter
    return _kind(semantics, site, node) == "state_dict_values"


def _check_enumerate(semantics: Semantics) -> Iterator[Finding]:
    """`for i, ... in enumerate(sd.items()): ... leaves[i] ...`"""
    for site in semantics.calls:
        if not (isinstance(site.node.func, cst.Name) and site.node.func.value == "enumerate"):
            continue
        loop = site.parent
        if not isinstance(loop, cst.For) or site.node is not loop.iter:
            continue
        iterated = positional_args(site.node)
        if not iterated or _kind(semantics, site, iterated[0]) != "state_dict_values":
            continue
        target = loop.target
        if not isinstance(target, cst.Tuple) or not isinstance(target.elements[0].value, cst.Name):
            continue
        index = target.elements[0].value.value
        for subscript in _subscripts(loop.body, index):
            base = subscript.value
            if isinstance(base, cst.Name):
                value = semantics.infer(base, at=site)
                if value is not None and value.kind == "leaves":
                    yield _finding(subscript, f"`{base.value}[{index}]` inside `enumerate` over "
                                              f"a state dict", anchor=site.node)
                    break


def _subscripts(body: cst.CSTNode, index: str) -> list[cst.Subscript]:
    """`x[index]` anywhere in `body`."""
    found = []
    for node in descendants(body, cst.Subscript):
        element = node.slice[0].slice if len(node.slice) == 1 else None
        if isinstance(element, cst.Index) and isinstance(element.value, cst.Name) \
                and element.value.value == index:
            found.append(node)
    return found


_GAP = rb"(?:[ \t\n\\]|#[^\n]*\n)*"  # what Python allows between tokens in brackets
_PAIRING_WORD = re.compile(rb"zip|unflatten|tree_at|enumerate")
_STATE_DICT_CALL = re.compile(rb"\bstate_dict" + _GAP + rb"\(" + _GAP + rb"\)")
_LOADER_MODULE = re.compile(rb"\b(?:torch|safetensors|numpy)\b")
# A loader is called by its own name (`torch.load(`, `load_file(`), or imported under
# another (`from torch import load as read`).
_LOADER_NAME = re.compile(rb"\bload(?:_file)?" + _GAP + rb"(?:\(|as\b)")
_VALUES_CALL = re.compile(rb"\b(?:values|items)" + _GAP + rb"\(" + _GAP + rb"\)")


def _has_state_dict(text: bytes) -> bool:
    """`.state_dict()`, or a loader (its qualified name: torch.load, safetensors'
    load_file and load, numpy.load) that an import of its module names."""
    # The words first (a substring test is many times cheaper than these patterns).
    return b"state_dict" in text and _STATE_DICT_CALL.search(text) is not None or \
        b"load" in text and _LOADER_NAME.search(text) is not None \
        and _LOADER_MODULE.search(text) is not None


def _has_values(text: bytes) -> bool:
    return (b"values" in text or b"items" in text) and _VALUES_CALL.search(text) is not None


def _has_leaves(text: bytes) -> bool:
    """tree_leaves, jax.tree.leaves, tree_flatten, jax.tree.flatten: by name, or by
    their import."""
    return b"leaves" in text or b"flatten" in text


def _in_file_or_project(source: bytes, look: Optional[FirstLook],
                        test: Callable[[bytes], bool]) -> bool:
    """`test` holds for the file, or for a project module it imports (without `look`:
    whether it imports one)."""
    if test(source):
        return True
    imported = look.imported if look is not None else None
    if imported is None:
        return imports_project_module(source)
    return any(test(text) for text in imported.sources())
_VALUE_NODES = (ast.Name, ast.Call, ast.Subscript, ast.Attribute)
_UNFLATTEN = ("jax.tree_util.tree_unflatten", "jax.tree.unflatten")
_LEAVES = ("jax.tree_util.tree_leaves", "jax.tree.leaves")


class _PairedValues:
    """What an expression of the file may hold, as the check's `_kind` asks: a state
    dict's values (a no-argument `.values()` or `.items()` of anything, through `list`,
    `tuple` or `dict`), or leaves (a leaves or flatten function of jax, through the same)."""

    def __init__(self, tree: ast.Module, source: bytes, look: Optional[FirstLook]) -> None:
        builtins = frozenset({"list", "tuple", "dict"})
        self.state_dict_values = ValueFirstLook(
            tree, source, look, lambda qual: False, made_by_call_of_call=False,
            made_by_methods=frozenset({"values", "items"}), passed_on_by_builtins=builtins)
        self.leaves = ValueFirstLook(
            tree, source, look, lambda qual: qual in LEAVES_FUNCTIONS or qual in FLATTEN_FUNCTIONS,
            made_by_call_of_call=False, passed_on_by_builtins=builtins)

    def values_given(self, node: Optional[ast.expr]) -> bool:
        """`_from_state_dict_values`: the node, or the iterable of its comprehension."""
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)):
            node = node.generators[0].iter
        return node is not None and self.state_dict_values.may_hold(node)


def _pairing_written(tree: ast.Module, table: dict[str, frozenset[str]], source: bytes,
                     look: Optional[FirstLook]) -> bool:
    """Whether the file writes one of the pairings the check looks at (see may_fire),
    given what may be a state dict's values and what may be leaves."""
    made: list[_PairedValues] = []

    def paired() -> _PairedValues:  # built when a pairing is met: most files have none
        if not made:
            made.append(_PairedValues(tree, source, look))
        return made[0]

    for node in walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id == "zip":
                given = [arg for arg in node.args if isinstance(arg, _VALUE_NODES)]
                if len(given) < 2:
                    continue
                values = paired()
                weights = [i for i, arg in enumerate(given)
                           if values.state_dict_values.may_hold(arg)]
                if weights and any(values.leaves.may_hold(arg) for i, arg in enumerate(given)
                                   if weights != [i]):
                    return True
                continue
            if not isinstance(func, (ast.Name, ast.Attribute)):
                continue
            quals = qualified_names(func, table)
            if any(qual in _UNFLATTEN for qual in quals):
                if paired().values_given(call_argument(node, 1, "leaves")):
                    return True
            if "equinox.tree_at" in quals and call_argument(node, 2, "replace") is not None:
                where = call_argument(node, 0, "where")
                if isinstance(where, ast.Lambda) and isinstance(where.body, ast.Call) and \
                        isinstance(where.body.func, (ast.Name, ast.Attribute)) and any(
                            qual in _LEAVES for qual in qualified_names(where.body.func, table)):
                    if paired().values_given(call_argument(node, 2, "replace")):
                        return True
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            if _enumerate_indexing(node, paired):
                return True
    return False


def _enumerate_indexing(loop: "ast.For | ast.AsyncFor",
                        paired: "Callable[[], _PairedValues]") -> bool:
    """`for i, ... in enumerate(x): ... name[i] ...`, `x` a state dict's values and
    `name` leaves (see _check_enumerate)."""
    iterated = loop.iter
    if not (isinstance(iterated, ast.Call) and isinstance(iterated.func, ast.Name)
            and iterated.func.id == "enumerate"):
        return False
    first = next((arg for arg in iterated.args if not isinstance(arg, ast.Starred)), None)
    if first is None:
        return False
    target = loop.target
    if not (isinstance(target, ast.Tuple) and target.elts and isinstance(target.elts[0], ast.Name)):
        return False
    index = target.elts[0].id
    for statement in loop.body:
        for node in walk(statement):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
                element = node.slice
                if isinstance(element, ast.Tuple) and len(element.elts) == 1:
                    element = element.elts[0]  # `leaves[i,]`: one element to libcst too
                if isinstance(element, ast.Name) and element.id == index:
                    values = paired()
                    if values.state_dict_values.may_hold(first) and \
                            values.leaves.may_hold(node.value):
                        return True
    return False
