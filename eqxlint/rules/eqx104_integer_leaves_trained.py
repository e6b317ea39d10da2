"""EQX104: integer or boolean arrays in the trainable set or the optimizer state."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import (FirstLook, import_spellings, mentioned_in_project,
                                      spelled_in, walk)
from eqxlint.rules.value_flow import FILTER_WORDS, ValueFirstLook, may_be_filtered
from eqxlint.semantics import Semantics, argument, positional_args

if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class IntegerLeavesTrained(Rule):
    code = "EQX104"
    name = "integer-leaves-trained"
    summary = "Integer or boolean arrays in the trainable set or the optimizer state"
    fix_applicability = "safe"
    # `eqx.is_array` may be spelled in a project module (a helper that filters).
    # `.init(`, or `(optim.init)(`.
    triggers = ((b"init",),)
    what_it_does = """
        Checks for `optim.init(eqx.filter(model, eqx.is_array))` (or the first half of
        `eqx.partition(model, eqx.is_array)`) when the model holds integer or boolean
        arrays: indices, masks, counters. Statically, that the model holds them is known
        from jaxtyping annotations on the fields of classes in the file
        (`Int[Array, "n"]`, `Bool[Array, "n"]`). At runtime, from the optimizer state.
    """
    why_bad = """
        `eqx.filter_grad` differentiates floating-point arrays only: its gradient is `None`
        at every integer array. The optimizer state, built from `eqx.is_array`, has a slot
        there, and optax (0.2.7 and later) refuses the mismatched structures at the first
        `optim.update` (the error is quoted below).
    """
    example = """
        from jaxtyping import Array, Float, Int

        class Model(eqx.Module):
            weight: Float[Array, "n"]
            index: Int[Array, "n"]

        optim = optax.adam(1e-3)
        opt_state = optim.init(eqx.filter(Model(w, i), eqx.is_array))
    """
    use_instead = """
        optim = optax.adam(1e-3)
        opt_state = optim.init(eqx.filter(Model(w, i), eqx.is_inexact_array))
    """
    fix_safety = """
        Safe: the fix replaces `eqx.is_array` by `eqx.is_inexact_array` in the filter given
        to `optim.init`, the same filter `eqx.filter_grad` uses. Offered when the filter is
        written inside the `init` call and the file already imports a name for
        `eqx.is_inexact_array` (`import equinox`, or a from-import of it).
    """
    runtime = """
        `check_model(model, opt_state=opt_state)` names every integer or boolean array of
        the model that has optimizer state, by path (`model.embedding.indices`).
    """
    real_error = ("ValueError: pytree structure error: different types at key path\\n"
                  "    tree_map tree.idx\\n"
                  "At that key path, the prefix pytree tree_map tree has a subtree of type\\n"
                  "    <class 'NoneType'>\\n"
                  "but at the same key path the full pytree has a subtree of different type\\n"
                  "    <class 'jaxlib._jax.ArrayImpl'>.")
    known_limits = """
        Static: only classes of the same file with jaxtyping annotations are known to hold
        integer arrays; `equinox.nn` layers hold none (BatchNorm's counters live in
        `eqx.nn.State`).
    """

    bad_examples = (
        Bad("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Float, Int

            class Model(eqx.Module):
                weight: Float[Array, "n"]
                index: Int[Array, "n"]

            model = Model(w, i)
            opt_state = optax.adam(1e-3).init(eqx.filter(model, eqx.is_array))  # expect: EQX104
        """, "the headline case"),
        Bad("""
            import equinox as eqx
            import jaxtyping
            import optax

            class Masked(eqx.Module):
                mask: jaxtyping.Bool[jaxtyping.Array, "n"]
                linear: eqx.nn.Linear

            optim = optax.sgd(1e-2, momentum=0.9)
            opt_state = optim.init(eqx.filter(Masked(m, lin), eqx.is_array))  # expect: EQX104
        """, "a boolean mask, module import of jaxtyping"),
        Bad("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int32

            class Embed(eqx.Module):
                table: Array
                ids: Int32[Array, "k"]

            class Net(eqx.Module):
                embed: Embed

            params, static = eqx.partition(Net(Embed(t, k)), eqx.is_array)
            opt_state = optax.adamw(1e-3).init(params)  # expect: EQX104
        """, "nested module, partition, Int32"),
        Bad("""
            from equinox import filter, is_array
            import optax
            from jaxtyping import Array, UInt8
            import equinox as eqx

            class Quantised(eqx.Module):
                codes: UInt8[Array, "n"]

            state = optax.adam(1e-3).init(filter(Quantised(c), is_array))  # expect: EQX104
        """, "from-imports"),
        Bad("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int

            class Base(eqx.Module):
                step: Int[Array, ""]

            class Child(Base):
                weight: Array

            optim = optax.adam(1e-3)
            opt_state = optim.init(eqx.filter(Child(s, w), eqx.is_array))  # expect: EQX104
        """, "inherited field"),
        Bad("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            class Trainer:
                def __init__(self, model: Model):
                    self.model = Model(i)
                    self.optim = optax.adam(1e-3)
                    self.opt_state = self.optim.init(eqx.filter(self.model, eqx.is_array))  # expect: EQX104
        """, "attributes of self"),
        Bad("""
            import equinox as e
            import optax
            from jaxtyping import Array, Int

            class Model(e.Module):
                index: Int[Array, "n"]

            def make_state(optim, model):
                return optim.init(e.filter(model, e.is_array))  # expect: EQX104

            opt_state = make_state(optax.adam(1e-3), Model(i))
        """, "equinox under another name; the optimizer and the model given by the caller"),
        Bad("""
            import optax
            from equinox import Module, filter, is_array as keep
            from jaxtyping import Array, Int

            class Model(Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(filter(Model(i), keep))  # expect: EQX104
        """, "is_array under another name, and no name for is_inexact_array: no fix"),
        Bad("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(i), eqx.is_array))  # expect: EQX104

            from ._indirection import Int as Int
        """, "`Int` imported again further down: the field's annotation is read before that"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Float, Int

            class Model(eqx.Module):
                weight: Float[Array, "n"]
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(w, i), eqx.is_inexact_array))
        """, "the inexact filter"),
        Good("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Float

            class Model(eqx.Module):
                weight: Float[Array, "n"]

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(w), eqx.is_array))
        """, "floating-point arrays only"),
        Good("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                weight: Array
                size: Int[Array, ""] = eqx.field(static=True)

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(w, 3), eqx.is_array))
        """, "a static field is not a leaf"),
        Good("""
            import equinox as eqx
            import optax

            model = eqx.nn.MLP(2, 2, 8, 2, key=key)
            opt_state = optax.adam(1e-3).init(eqx.filter(model, eqx.is_array))
        """, "equinox.nn layers hold no integer arrays"),
        Good("""
            import equinox as eqx
            import optax

            opt_state = optax.adam(1e-3).init(eqx.filter(load_model(), eqx.is_array))
        """, "the model is not visible"),
        Good("""
            import equinox as eqx
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            leaves = eqx.filter(Model(i), eqx.is_array)
        """, "a filter that is not given to an optimizer"),
        Good("""
            import equinox as eqx
            import torch
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            state = torch.optim.Adam(p).init(eqx.filter(Model(i), eqx.is_array))
        """, "not optax"),
        Good("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            spec = lambda x: eqx.is_array(x) and x.dtype.kind == "f"
            opt_state = optax.adam(1e-3).init(eqx.filter(Model(i), spec))
        """, "a filter of the user's"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(i), eqx.is_array))
        """, """
            import equinox as eqx
            import optax
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(i), eqx.is_inexact_array))
        """),
        FixCase("""
            import equinox as eqx
            import optax
            from equinox import is_array as keep
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(i), keep))
        """, """
            import equinox as eqx
            import optax
            from equinox import is_array as keep
            from jaxtyping import Array, Int

            class Model(eqx.Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(eqx.filter(Model(i), eqx.is_inexact_array))
        """),
        FixCase("""
            import optax
            from equinox import Module, filter, is_array, is_inexact_array
            from jaxtyping import Array, Int

            class Model(Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(filter(Model(i), is_array))
        """, """
            import optax
            from equinox import Module, filter, is_array, is_inexact_array
            from jaxtyping import Array, Int

            class Model(Module):
                index: Int[Array, "n"]

            opt_state = optax.adam(1e-3).init(filter(Model(i), is_inexact_array))
        """),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Is there an `optim.init(x)` whose optimizer and trainable set the check may know?

        The check wants a call `o.init(x)` with one positional argument, `o` inferred an
        optax optimizer and `x` a filtered tree whose filter is `equinox.is_array`, as
        this file's imports spell it (`Semantics.qualname` of the filter's spec, wherever
        the filter call is written). So: this file's imports can spell
        `equinox.is_array` (`import_spellings`), that spelling occurs in the file or a
        project module it imports, `optax` occurs in either, and Python's `ast` of the
        file has such a call whose receiver may hold an optimizer and whose argument may
        be filtered (`ValueFirstLook`). A file `ast` cannot parse goes to the full check.
        """
        if not super().may_fire(source, look):
            return False
        # First the text (here or in a project module it imports): `is_array`, `optax`,
        # and a filter.
        for needles in ((b"is_array",), (b"optax",), (b"filter", b"partition")):
            here = FILTER_WORDS.search(source) if len(needles) == 2 else needles[0] in source
            if not here and not mentioned_in_project(source, look, *needles):
                return False
        tree = (look or FirstLook(source)).tree()
        if tree is None:
            return True
        spellings = import_spellings(tree, ("equinox.is_array",))
        if not spellings:
            return False
        if not spelled_in(spellings, source):
            imported = look.imported if look is not None else None
            if imported is None:
                if not mentioned_in_project(source, None):
                    return False
            elif not any(spelled_in(spellings, text) for text in imported.sources()):
                return False
        if b"optax" not in source and not mentioned_in_project(source, look, b"optax"):
            return False
        calls = [node for node in walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute) and node.func.attr == "init"
                 and sum(not isinstance(a, ast.Starred) for a in node.args) == 1]
        if not calls:
            return False
        optimizers = ValueFirstLook(tree, source, look)
        filtered = may_be_filtered(tree, source, look)
        for call in calls:
            given = next(a for a in call.args if not isinstance(a, ast.Starred))
            if optimizers.may_hold(call.func.value) and filtered.may_hold(given):  # type: ignore[attr-defined]
                return True
        return False

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            func = site.node.func
            args = positional_args(site.node)
            if not isinstance(func, cst.Attribute) or func.attr.value != "init" or len(args) != 1:
                continue
            optimizer = semantics.infer(func.value, at=site)
            if optimizer is None or optimizer.kind != "optimizer":
                continue
            trainable = semantics.infer(args[0], at=site)
            if trainable is None or trainable.kind != "filtered" or trainable.source is None \
                    or not isinstance(trainable.node, cst.Call):
                continue
            spec = argument(trainable.node, 1, "filter_spec")
            if spec is None or semantics.qualname(spec) != "equinox.is_array":
                continue
            model = semantics.infer(trainable.source, at=semantics.site(trainable.node) or site)
            field = semantics.integer_array_field(model) if model is not None else None
            if field is None:
                continue
            inline = trainable.node is args[0]
            spelled = _inexact_spelling(semantics, spec)
            better = spelled or "eqx.is_inexact_array"
            yield Finding(
                node=site.node,
                message=(f"the optimizer is initialised on `eqx.is_array` leaves, which include "
                         f"the integer array `{field}`: `eqx.filter_grad` gives None there, "
                         f"and the first `update` fails"),
                hint=f"Train floating-point arrays only: filter with `{better}`",
                replacements=((spec, cst.parse_expression(better)),)
                if inline and spelled else (),
                fix_message=f"Filter with `{better}`",
            )

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        from eqxlint.runtime.tree import describe

        for stray in context.stray_leaves:
            if stray.integer_array:
                yield context.diagnostic(
                    self, stray.path,
                    f"is {describe(stray.leaf)}, yet the optimizer state has a slot for it: "
                    f"`optim.init` was given `eqx.filter(model, eqx.is_array)`, and "
                    f"`eqx.filter_grad` gives None there",
                    "Train floating-point arrays only: "
                    "`optim.init(eqx.filter(model, eqx.is_inexact_array))`")


def _inexact_spelling(semantics: Semantics, spec: cst.BaseExpression) -> Optional[str]:
    """How this file can name `equinox.is_inexact_array` where it names `is_array`:
    through the same module (`eqx.is_array` -> `eqx.is_inexact_array`), through an
    `import equinox`, or a from-import of it. None when the file imports no such name
    (then the fix would need an import, and none is offered)."""
    if isinstance(spec, cst.Attribute) and semantics.qualname(spec.value) == "equinox":
        return f"{semantics.code_of(spec.value)}.is_inexact_array"
    module = semantics.local_name_for("equinox")
    if module is not None:
        return f"{module}.is_inexact_array"
    return semantics.local_name_for("equinox.is_inexact_array")
