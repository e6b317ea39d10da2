"""EQX503: a train step computes the new model, optimizer state or eqx.nn.State and drops it."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Optional, Union

import libcst as cst

from eqxlint.knowledge import optax_transforms
from eqxlint.rules.base import Bad, Finding, Good, Rule
from eqxlint.rules.eqx202_transform_created_in_loop import JITS, jit_of_decorator
from eqxlint.rules.eqx204_transform_created_per_call import called_in_loops
from eqxlint.rules.eqx302_stateful_model_without_state import stateful_layer
from eqxlint.rules.first_look import (FirstLook, ast_dotted_name, import_spellings,
                                      mentioned_in_project, named_besides_definition, spelled_in,
                                      statement_blocks, walk)
from eqxlint.rules.value_flow import ValueFirstLook
from eqxlint.semantics import (LOCAL_PREFIX, Binding, CallSite, ClassInfo, Scope, Semantics, Value, argument,
                               descendants, positional_args)
from eqxlint.semantics.syntax import parameters_of

APPLY_UPDATES = ("equinox.apply_updates", "optax.apply_updates")
GRADS = ("equinox.filter_value_and_grad", "equinox.filter_grad", "jax.value_and_grad",
         "jax.grad")
VALUE_AND_GRADS = ("equinox.filter_value_and_grad", "jax.value_and_grad")
VMAPS = ("jax.vmap", "equinox.filter_vmap")
SWITCHES = ("equinox.nn.inference_mode", "equinox.tree_inference")
LAX_BODIES = ("jax.lax.scan", "jax.lax.fori_loop", "jax.lax.while_loop")
# Wrappers that add their own state (MultiSteps' accumulator) or pass the inner one on.
_WRAPPERS = ("chain", "named_chain", "inject_hyperparams")
# Where each transform or `lax` loop takes the function it runs: (position, keyword).
_FUNCTION_ARGUMENT = {**{name: (0, "fun") for name in JITS + GRADS},
                      "jax.lax.scan": (0, "f"), "jax.lax.fori_loop": (2, "body_fun"),
                      "jax.lax.while_loop": (1, "body_fun")}
_UPDATE_CALL = re.compile(rb"\.\s*update\s*\(")

FunctionNode = cst.FunctionDef


class UpdateDiscarded(Rule):
    code = "EQX503"
    name = "update-discarded"
    summary = "A train step computes the new model, optimizer state or eqx.nn.State and drops it"
    # Each finding needs an `apply_updates`, an `optim.update(` (perhaps `(optim.update)(`)
    # or (the eqx.nn.State) a grad transform or `apply_updates` in the function's file.
    triggers = ((b"update", b"grad"),)
    what_it_does = """
        Checks train steps (a function that is jitted, that a loop or `lax.scan` of this
        file calls, that returns the loss of a `value_and_grad`, or that is differentiated)
        for a new value bound to a local and then never read, returned, stored or passed
        anywhere:
        - the model from `eqx.apply_updates(model, updates)` (also the whole call as a
          statement, its result thrown away);
        - the optimizer state from `updates, opt_state = optim.update(...)`, where `optim`
          is an optax transformation that keeps state (Adam's moments, a schedule's
          count, `MultiSteps`' accumulator);
        - the `eqx.nn.State` from `y, _ = model(x, state)` (or through `jax.vmap(model,
          ...)`) in a function that is differentiated or applies updates, where the model
          holds `eqx.nn.BatchNorm`, `SpectralNorm` or a `StateIndex`.
        Rebinding a parameter (`model = eqx.apply_updates(model, updates)`) changes nothing
        for the caller: Equinox models are immutable, and the caller's `model` is the old one.
    """
    why_bad = """
        Nothing fails and nothing trains. Measured (jax 0.10.2, equinox 0.13.8, optax 0.2.8),
        with every warning turned into an error: a jitted step that applies Adam's updates
        and returns only the loss gives the same loss five steps running
        (2.9367458820343018 each time); dropping Adam's state leaves its `count` at 0 and
        `mu` at zeros, so every step is the first one (Adam degenerates to a sign-like
        step of size `lr`); a BatchNorm loss that writes `pred, _ = jax.vmap(model, ...)
        (x, state)` leaves the state equal to its initial value after five steps, so
        evaluation normalises with the initial running statistics.
    """
    example = """
        @eqx.filter_jit
        def train_step(model, opt_state, x, y):
            loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
            updates, opt_state = optim.update(grads, opt_state, model)
            model = eqx.apply_updates(model, updates)
            return loss
    """
    use_instead = """
        @eqx.filter_jit
        def train_step(model, opt_state, x, y):
            loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
            updates, opt_state = optim.update(grads, opt_state, model)
            model = eqx.apply_updates(model, updates)
            return model, opt_state, loss

        model, opt_state, loss = train_step(model, opt_state, x, y)
    """
    fix_safety = """
        No automatic fix: the function's callers must take the new value back as well.
    """
    runtime = """
        `check_step(step, model, opt_state, ...)` (and `assert_step`): the step is traced once
        on shapes, and a returned model, optimizer state or `eqx.nn.State` that *is* the
        given one, leaf for leaf, is reported by path while the rest of the step advances
        (a model returned unchanged while the optimizer state moves, and the reverse; a
        BatchNorm state returned unchanged while the model trains). The static check
        also sees a step that returns none of them (only the loss); the runtime check
        sees any step that can be traced, whatever its code looks like.
    """
    real_error = """
        None: nothing fails. Measured (jax 0.10.2, equinox 0.13.8, optax 0.2.8), with
        `warnings.simplefilter("error")`: a step that drops the new model returned the losses
        `[2.9367458820343018, 2.9367458820343018, 2.9367458820343018, 2.9367458820343018,
        2.9367458820343018]`; after five steps that drop Adam's state, `opt_state[0].count`
        was still `0` and `mu` all zeros; after five steps of a BatchNorm loss that discards
        the state, `eqx.tree_equal(state, initial_state)` was `True` (keeping it: `False`).
    """
    known_limits = """
        The new value must be bound to a plain name (or be a whole discarded statement) in
        a function; a read anywhere later in the function, anywhere in a loop around the
        assignment, or in a nested function counts as a use, so a training loop inside
        one function is quiet even when its final model is dropped. The optimizer must be
        known as an optax transformation that keeps state (plain `optax.sgd` keeps none:
        dropping its state is harmless). For the `eqx.nn.State`, the model must be known
        to hold a stateful layer, and for a project class its `__call__` must return the
        state it was given, so that the position of the new state is shown.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx
            import optax

            optim = optax.adam(1e-3)

            @eqx.filter_jit
            def train_step(model, opt_state, x, y):
                loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
                updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))  # expect: EQX503
                model = eqx.apply_updates(model, updates)  # expect: EQX503
                return loss
        """, "the headline: a jitted step that returns only the loss"),
        Bad("""
            import equinox as eqx
            import optax

            class Trainer:
                def __init__(self, model, lr):
                    self.model = model
                    self.optim = optax.adamw(lr)
                    self.opt_state = self.optim.init(eqx.filter(model, eqx.is_inexact_array))

                def train_step(self, x, y):
                    loss, grads = eqx.filter_value_and_grad(self.loss)(self.model, x, y)
                    updates, self.opt_state = self.optim.update(
                        grads, self.opt_state, eqx.filter(self.model, eqx.is_inexact_array))
                    model = eqx.apply_updates(self.model, updates)  # expect: EQX503
                    return loss
        """, "a PyTorch-style trainer: the new model is never stored on self"),
        Bad("""
            import equinox as eqx
            import jax
            import optax

            optimizer = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-4))

            def make_step(model, opt_state, batch):
                loss, grads = eqx.filter_value_and_grad(compute_loss)(model, batch)
                updates, new_opt_state = optimizer.update(grads, opt_state, model)  # expect: EQX503
                model = eqx.apply_updates(model, updates)
                return model, opt_state, loss

            for batch in loader:
                model, opt_state, loss = make_step(model, opt_state, batch)
        """, "the new optimizer state under another name, the old one returned"),
        Bad("""
            import equinox as eqx
            import optax

            optim = optax.MultiSteps(optax.adam(1e-3), every_k_schedule=4)

            @eqx.filter_jit
            def step(params, static, opt_state, batch):
                grads = eqx.filter_grad(loss_fn)(params, static, batch)
                updates, _ = optim.update(grads, opt_state, params)  # expect: EQX503
                return eqx.apply_updates(params, updates)
        """, "MultiSteps' accumulator thrown away into `_`: it never reaches k"),
        Bad("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                norm: eqx.nn.BatchNorm

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(2, 2, key=key)
                    self.norm = eqx.nn.BatchNorm(2, axis_name="batch")

                def __call__(self, x, state):
                    x, state = self.norm(self.linear(x), state)
                    return x, state

            def loss_fn(model, state, x, y):
                batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
                pred, _ = batched(x, state)  # expect: EQX503
                return jnp.mean((pred - y) ** 2)

            model, state = eqx.nn.make_with_state(Net)(jax.random.key(0))
            loss, grads = eqx.filter_value_and_grad(loss_fn)(model, state, x, y)
        """, "BatchNorm's new statistics dropped in a differentiated loss"),
        Bad("""
            import equinox as eqx
            import jax

            @eqx.filter_jit
            def train_step(model: eqx.nn.BatchNorm, state: eqx.nn.State, x, opt_state):
                def loss(model):
                    y, new_state = jax.vmap(model, axis_name="batch", in_axes=(0, None),  # expect: EQX503
                                            out_axes=(0, None))(x, state)
                    return (y ** 2).mean()
                grads = eqx.filter_grad(loss)(model)
                model = eqx.apply_updates(model, grads)
                return model, state, opt_state
        """, "the new state bound inside the loss and never handed out"),
        Bad("""
            import equinox as eqx

            def sgd_step(model, grads, lr):
                updates = jax.tree.map(lambda g: -lr * g, grads)
                eqx.apply_updates(model, updates)  # expect: EQX503
                return model

            for x, y in batches:
                model = sgd_step(model, grad_fn(model, x, y), 0.1)
        """, "the call as a statement, as `optimizer.step()` would be in PyTorch"),
        Bad("""
            import equinox as eqx
            import optax

            class Learner:
                def __init__(self):
                    self.tx = optax.adam(1e-3)

                def update(self, model, opt_state, grads):
                    self.tx.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))  # expect: EQX503
                    return model, opt_state
        """, "optax's update as a statement: the updates and the new state both dropped"),
        Bad("""
            import equinox as eqx
            import optax

            def make_step(model, opt_state, optim, x, y):
                (loss, aux), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, x, y)
                updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))  # expect: EQX503
                model = eqx.apply_updates(model, updates)  # expect: EQX503
                return loss, aux

            optim = optax.adamw(1e-3)
            for x, y in loader:
                loss, aux = make_step(model, opt_state, optim, x, y)
        """, "the optimizer passed in by the loop that calls the step"),
        Bad("""
            import equinox as eqx
            import jax
            import optax

            class Trainer:
                def __init__(self):
                    self.optim = optax.adam(1e-3)

                @eqx.filter_jit
                def step(self, model, opt_state, batch):
                    grads = eqx.filter_grad(loss_fn)(model, batch)
                    updates, opt_state = self.optim.update(grads, opt_state, model)  # expect: EQX503
                    return eqx.apply_updates(model, updates)

            def scan_body(carry, batch):
                model, opt_state = carry
                loss, grads = eqx.filter_value_and_grad(loss_fn)(model, batch)
                updates, opt_state = optim.update(grads, opt_state, model)
                model = eqx.apply_updates(model, updates)
                return (model, opt_state), loss

            (model, opt_state), losses = jax.lax.scan(scan_body, (model, opt_state), batches)
        """, "a jitted method that returns only the model, beside a scan body that is right"),
        Bad("""
            import equinox as eqx
            import jax

            @eqx.filter_jit
            def grads_of(model: eqx.nn.BatchNorm, state: eqx.nn.State, x):
                def loss(model):
                    y, new_state = jax.vmap(model, axis_name="batch", in_axes=(0, None),  # expect: EQX503
                                            out_axes=(0, None))(x, state)
                    return (y ** 2).mean()
                return eqx.filter_grad(loss)(model), state
        """, "the new state dropped in a file that never names apply_updates or an update"),
        Bad("""
            from equinox import apply_updates as apply
            import jax

            def sgd(model, grads):
                model = apply(model, jax.tree.map(lambda g: -0.1 * g, grads))  # expect: EQX503
                return grads

            for g in stream:
                sgd(model, g)
        """, "apply_updates imported under another name"),
    )
    good_examples = (
        Good("""
            import equinox as eqx
            import optax

            optim = optax.adam(1e-3)

            @eqx.filter_jit
            def train_step(model, opt_state, x, y):
                loss, grads = eqx.filter_value_and_grad(loss_fn)(model, x, y)
                updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
                model = eqx.apply_updates(model, updates)
                return model, opt_state, loss
        """, "the canonical step: everything returned"),
        Good("""
            import equinox as eqx
            import optax

            optim = optax.adam(1e-3)

            @eqx.filter_jit
            def train_step(model, opt_state, grads):
                updates, opt_state = optim.update(grads, opt_state, model); keep(opt_state)
                model = eqx.apply_updates(model, updates); return model
        """, "read later on the same line, after a `;`"),
        Good("""
            import equinox as eqx
            import optax

            class Trainer:
                def __init__(self, model):
                    self.model = model
                    self.optim = optax.adam(1e-3)
                    self.opt_state = self.optim.init(eqx.filter(model, eqx.is_inexact_array))

                def train_step(self, x, y):
                    loss, grads = eqx.filter_value_and_grad(self.loss)(self.model, x, y)
                    updates, opt_state = self.optim.update(
                        grads, self.opt_state, eqx.filter(self.model, eqx.is_inexact_array))
                    self.model = eqx.apply_updates(self.model, updates)
                    self.opt_state = opt_state
                    return loss
        """, "stored on self"),
        Good("""
            import dataclasses
            import equinox as eqx

            class TrainState(eqx.Module):
                model: eqx.Module
                opt_state: object

                def apply_gradients(self, optim, grads):
                    updates, new_opt_state = optim.update(grads, self.opt_state, self.model)
                    new_model = eqx.apply_updates(self.model, updates)
                    return dataclasses.replace(self, model=new_model, opt_state=new_opt_state)
        """, "passed on to a new train state"),
        Good("""
            import equinox as eqx
            import jax
            import optax

            class SimpleTrainer(eqx.Module):
                optimizer: optax.GradientTransformation

                def __call__(self, model, X, y, n_iter=100):
                    opt_state = self.optimizer.init(eqx.filter(model, eqx.is_inexact_array))
                    for _ in range(n_iter):
                        loss, grads = eqx.filter_value_and_grad(self.loss_func)(model, X, y)
                        updates, opt_state = self.optimizer.update(grads, opt_state)
                        model = eqx.apply_updates(model, updates)
                    return model
        """, "a loop inside the function reads both again next iteration (feedbax)"),
        Good("""
            import equinox as eqx
            import optax

            def test_one_update_has_the_right_sign():
                opt = optax.adam(0.1)
                params = {"w": jnp.ones(3)}
                state = opt.init(params)
                updates, _ = opt.update({"w": jnp.ones(3)}, state, params)
                assert (updates["w"] < 0).all()
        """, "a test looking at one update: no step"),
        Good("""
            import equinox as eqx
            import optax

            optim = optax.sgd(0.01)

            @eqx.filter_jit
            def step(model, opt_state, x, y):
                grads = eqx.filter_grad(loss_fn)(model, x, y)
                updates, _ = optim.update(grads, opt_state)
                return eqx.apply_updates(model, updates)
        """, "plain SGD keeps no state: dropping it is harmless"),
        Good("""
            import equinox as eqx
            import jax

            @eqx.filter_jit
            def predict_batch(model, state, inputs):
                preds, _ = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(inputs, state)
                return preds

            model, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(4, axis_name="batch")
            for batch in loader:
                print(predict_batch(model, state, batch))
        """, "a prediction: the state is not a training one"),
        Good("""
            import equinox as eqx
            import jax

            def loss_fn(model, state, x, y):
                batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
                pred, state = batched(x, state)
                return ((pred - y) ** 2).mean(), state

            model, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(4, axis_name="batch")
            (loss, state), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model, state, x, y)
        """, "the state handed out with has_aux=True"),
        Good("""
            import equinox as eqx
            import jax

            @eqx.filter_jit
            def evaluate(model, state, x, y):
                inference_model = eqx.nn.inference_mode(model)
                pred, _ = jax.vmap(inference_model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(x, state)
                return jnp.mean(pred == y)

            model, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(4, axis_name="batch")
        """, "evaluation in inference mode: the statistics do not move"),
        Good("""
            import equinox as eqx

            def inner_adapt(model, grads, lr):
                adapted = eqx.apply_updates(model, jax.tree.map(lambda g: -lr * g, grads))
                return query_loss(adapted)

            for task in tasks:
                loss = inner_adapt(model, task_grads(model, task), 0.1)
        """, "MAML's inner step: the adapted model is used for the query loss"),
        Good("""
            import equinox as eqx

            def train_step(model, grads):
                global MODEL
                MODEL = eqx.apply_updates(model, grads)

            for g in grads_stream:
                train_step(MODEL, g)
        """, "a global, not a local"),
        Good("""
            import optax

            @jax.jit
            def step(params, opt_state, batch):
                grads = jax.grad(loss)(params, batch)
                updates, opt_state = config.update(grads, opt_state)
                params = optax.apply_updates(params, updates)
                checkpoints.append(params)
                return opt_state
        """, "params passed on to a list; `config.update` is not an optax optimizer"),
        Good("""
            import equinox as eqx
            import jax
            import optax

            optim = optax.adam(1e-3)

            @eqx.filter_jit
            def update_norm(model, opt_state, grads):
                updates, _ = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
                return optax.global_norm(updates)

            @eqx.filter_jit
            def step(model, opt_state, grads):
                updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
                return eqx.apply_updates(model, updates), opt_state
        """, "a diagnostic probe of the update beside a step that keeps the state"),
        Good("""
            import equinox as eqx
            import jax

            def adversarial_loss(model, state, x, y, eps):
                batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
                probe, _ = batched(x, state)
                x_adv = x + eps * jnp.sign(jax.grad(lambda v: cross_entropy(batched(v, state)[0], y))(x))
                pred, state = batched(x_adv, state)
                return cross_entropy(pred, y), state

            model, state = eqx.nn.make_with_state(eqx.nn.BatchNorm)(4, axis_name="batch")
            (loss, state), grads = eqx.filter_value_and_grad(adversarial_loss, has_aux=True)(model, state, x, y, 0.1)
        """, "a probe pass beside a pass that keeps the statistics"),
        Good("""
            import jax
            import optax

            optim = optax.adam(1e-3)

            @jax.jit
            def step(params, opt_state, grads):
                metrics = {"norm": optax.global_norm(grads)}
                metrics.update(lr=1e-3)
                updates, opt_state = optim.update(grads, opt_state, params)
                return optax.apply_updates(params, updates), opt_state, metrics
        """, "a dict's `.update` beside the optimizer's: nothing an optimizer returns is dropped"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Is there a statement that can drop a new model, optimizer state or eqx.nn.State?

        Python's `ast` of the file is searched for the shapes the check reports, each with
        what the check needs to know about it, read from the imports as `Semantics.qualname`
        reads them (`import_spellings`: aliases, from-imports, imports inside functions):
        - a call spelled as `equinox.apply_updates`/`optax.apply_updates` as a statement
          (anywhere), or bound by `name = ...` in a function that may be a step;
        - `x.update(...)` as a statement, or bound by `a, b, ... = ...` with a name second
          in a function that may be a step, where `x` may hold an optax optimizer
          (`ValueFirstLook`: `optax` occurs in the file or a project module it imports,
          and `x` is bound to what may build one: not a dict literal, not `jax.config`);
        - `a, b, ... = f(x, state, ...)` in a function (two positional arguments, no
          `inference=`), where `BatchNorm`, `SpectralNorm` or `StateIndex` occurs in the
          file or its project imports (the check asks the same), the file spells a grad
          transform or `apply_updates` (what makes a function a training one), and `f` may
          be inferred at all (a bound name, a `self.` attribute assigned somewhere, a call).
        "May be a step" (`_is_step`): the def is decorated, its name occurs elsewhere in the
        file (a transform or loop can only reach it by name), or the file spells a
        `value_and_grad`.
        A bound name must also be unread afterwards, as the check's `_never_used` reads it,
        seen from fewer reads (`_Reads`): a load of the name on a later line than the
        statement (and any statement `;` or `\\` joins to it), in a loop around it,
        or in a nested def or lambda, or `locals()`/`eval` in the function, or a
        `global`/`nonlocal` of the name all make a finding impossible.
        A file `ast` cannot parse goes to the full check.
        """
        if not super().may_fire(source, look):
            return False
        # First the text: `apply_updates`; or `update` and `optax` (here or in a project
        # module the file imports); or a stateful layer (the same) and a grad transform.
        if b"apply_updates" not in source:
            update = b"update" in source and (
                b"optax" in source or mentioned_in_project(source, look, b"optax"))
            if not update and not (b"grad" in source and _stateful_text(source, look)):
                return False
        tree = (look or FirstLook(source)).tree()
        if tree is None:
            return True
        return _FirstLook(source, look, tree).may_fire()

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        context = _Context(semantics)
        for site in semantics.calls:
            if site.qualname in APPLY_UPDATES:
                yield from _dropped_model(context, site)
            elif isinstance(site.node.func, cst.Attribute) and site.node.func.attr.value == "update":
                yield from _dropped_opt_state(context, site)
            else:
                yield from _dropped_state(context, site)


class _Context:
    """What the checks of one file share: the functions a loop calls, the differentiated ones."""

    def __init__(self, semantics: Semantics) -> None:
        self.semantics = semantics
        self._loop_called: Optional[set[int]] = None
        self._passed: Optional[dict[int, set[str]]] = None
        self._stateful: Optional[bool] = None

    def loop_called(self) -> set[int]:
        if self._loop_called is None:
            self._loop_called = called_in_loops(self.semantics)
        return self._loop_called

    def passed_to(self, function: FunctionNode) -> set[str]:
        """The qualified names of the transforms and `lax` loops this def is handed to by name."""
        if self._passed is None:
            passed: dict[int, set[str]] = {}
            for site in self.semantics.calls:
                where = _FUNCTION_ARGUMENT.get(site.qualname or "")
                if where is None:
                    continue
                target = argument(site.node, *where)
                if not isinstance(target, cst.Name):
                    continue
                definition = self.semantics.function_named(target.value, site.scope, site.seq)
                if definition is not None:
                    passed.setdefault(id(definition), set()).add(site.qualname or "")
            self._passed = passed
        return self._passed.get(id(function), set())

    def opt_state_kept_elsewhere(self, dropped: CallSite) -> bool:
        """Another `optimizer.update(...)` of the file keeps its new state: the author
        threads it, and this drop into `_` (a probe, a diagnostic) is on purpose."""
        semantics = self.semantics
        for site in semantics.calls:
            func = site.node.func
            if site is dropped or not isinstance(func, cst.Attribute) or \
                    func.attr.value != "update":
                continue
            if _kept(semantics, site, 1):
                value = semantics.infer(func.value, at=site)
                if value is not None and value.kind == "optimizer":
                    return True
        return False

    def state_kept_elsewhere(self, dropped: CallSite) -> bool:
        """Another call of a stateful model in the file keeps the new state it returns: this
        drop into `_` (a second forward pass, a penalty term) is on purpose."""
        semantics = self.semantics
        for site in semantics.calls:
            if site is dropped or len(positional_args(site.node)) < 2 or \
                    _bound_tuple(site) is None:
                continue
            scope = _function_of(site.scope)
            model_node = _model_called(semantics, site)
            if scope is None or model_node is None or _inside_module_class(semantics, scope):
                continue  # a layer threading the state through its sublayers
            model = _model_value(self, model_node, site, scope)
            if model is None or model.kind != "module" or stateful_layer(semantics, model) is None:
                continue
            position = _state_position(semantics, model)
            if position is not None and _kept(semantics, site, position):
                return True
        return False

    def stateful_mentioned(self) -> bool:
        if self._stateful is None:
            self._stateful = self.semantics.mentions("BatchNorm", "SpectralNorm", "StateIndex")
        return self._stateful


@dataclass
class _Dropped:
    name: str
    function: FunctionNode
    parameter: bool  # the name is also a parameter of the function


def _function_of(scope: Scope) -> Optional[Scope]:
    if scope.kind != "function" or not isinstance(scope.node, cst.FunctionDef):
        return None
    return scope


def _decorators(semantics: Semantics, function: FunctionNode) -> set[str]:
    found: set[str] = set()
    for decorator in function.decorators:
        expression = decorator.decorator
        jit = jit_of_decorator(semantics, expression)
        if jit is not None:
            found.add(jit)
            continue
        called = expression.func if isinstance(expression, cst.Call) else expression
        qual = semantics.qualname(called)
        if qual is not None:
            found.add(qual)
    return found


def _is_step(context: _Context, scope: Scope) -> Optional[str]:
    """Why the function runs once per training step, or None when the code does not show it."""
    semantics, function = context.semantics, scope.node
    assert isinstance(function, cst.FunctionDef)
    applied = _decorators(semantics, function) | context.passed_to(function)
    if applied & set(JITS):
        return "is jitted"
    if applied & set(GRADS):
        return "is differentiated"
    if applied & set(LAX_BODIES):
        return "is the body of a `lax` loop"
    if id(function) in context.loop_called():
        return "is called in a loop"
    if _returns_a_loss(semantics, scope):
        return "returns the loss of a `value_and_grad`"
    return None


def _returns_a_loss(semantics: Semantics, scope: Scope) -> bool:
    """A `return` hands out the value of a `value_and_grad` (the loss)."""
    for statement in semantics.returns.get(id(scope.node), []):
        value = statement.value
        values = [e.value for e in value.elements] if isinstance(value, cst.Tuple) else [value]
        for item in values:
            if not isinstance(item, cst.Name):
                continue
            for binding in scope.bindings.get(item.value, []):
                if isinstance(binding.value, cst.Call) and binding.index in (0, None) \
                        and _is_value_and_grad_call(semantics, binding.value, scope):
                    return True
    return False


def _is_value_and_grad_call(semantics: Semantics, call: cst.Call, scope: Scope) -> bool:
    func = call.func
    if isinstance(func, cst.Call):
        return semantics.qualname(func.func) in VALUE_AND_GRADS
    if isinstance(func, cst.Name):
        binding = semantics.lookup(func.value, scope, 1 << 62)
        if binding is None:
            return False
        if binding.definition == "function" and isinstance(binding.definition_node, cst.FunctionDef):
            return bool(_decorators(semantics, binding.definition_node) & set(VALUE_AND_GRADS))
        if isinstance(binding.value, cst.Call):
            return semantics.qualname(binding.value.func) in VALUE_AND_GRADS
    return False


def _is_training(context: _Context, scope: Scope) -> Optional[str]:
    """The function is differentiated, or computes and applies updates itself."""
    semantics, function = context.semantics, scope.node
    assert isinstance(function, cst.FunctionDef)
    applied = _decorators(semantics, function) | context.passed_to(function)
    if applied & set(GRADS):
        return "is differentiated"
    for site in semantics.calls:
        if site.scope.is_within(scope) and site.qualname in GRADS + APPLY_UPDATES:
            return "computes gradients or applies updates"
    return None


def _bound_name(site: CallSite, index: Optional[int]) -> Optional[cst.Name]:
    """The name the call's result (or its element `index`) is bound to, by `=`."""
    line = site.line
    if not isinstance(line, cst.SimpleStatementLine):
        return None
    for statement in line.body:
        if not isinstance(statement, cst.Assign) or statement.value is not site.node \
                or len(statement.targets) != 1:
            continue
        target = statement.targets[0].target
        if index is None:
            return target if isinstance(target, cst.Name) else None
        if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) > index \
                and not any(isinstance(e, cst.StarredElement) for e in target.elements):
            element = target.elements[index].value
            return element if isinstance(element, cst.Name) else None
    return None


def _never_used(semantics: Semantics, site: CallSite, target: cst.Name,
                scope: Scope) -> Optional[_Dropped]:
    """The name bound at `target` is a local never read again in its function."""
    function = scope.node
    assert isinstance(function, cst.FunctionDef)
    name = target.value
    if name in scope.declared_global:
        return None
    nonlocal_names = {item.name.value for node in descendants(function, cst.Nonlocal)
                      for item in node.names}
    global_names = {item.name.value for node in descendants(function, cst.Global)
                    for item in node.names}
    if name in nonlocal_names | global_names:
        return None
    binding = next((b for b in scope.bindings.get(name, []) if b.target is target), None)
    if binding is None:
        return None
    names = descendants(function.body, cst.Name)
    # Python evaluates the right-hand side first: only what follows the statement reads it
    # (a statement after it on the same line, `; use(opt_state)`, follows it).
    line = site.line
    assert isinstance(line, cst.SimpleStatementLine)
    inside: set[int] = set()
    for small in line.body:
        inside = {id(node) for node in descendants(small, cst.Name)}
        if id(target) in inside:
            break
    else:
        inside = {id(node) for node in descendants(line, cst.Name)}
    last = max((i for i, node in enumerate(names) if id(node) in inside), default=-1)
    stores = _store_ids(semantics, function)
    loops = _loops_around(function, binding)
    in_loops = {id(node) for loop in loops for node in descendants(loop, cst.Name)}
    nested = {id(node) for inner in descendants(function.body, (cst.FunctionDef, cst.Lambda))
              for node in descendants(inner, cst.Name)}
    for position, node in enumerate(names):
        if node.value in ("locals", "vars", "eval", "exec") and id(node) not in stores:
            return None
        if node.value != name or id(node) in stores:
            continue
        if position > last or id(node) in in_loops or id(node) in nested:
            return None
    parameter = any(p.name.value == name for p in parameters_of(function)
                    + list(function.params.kwonly_params))
    return _Dropped(name, function, parameter)


def _inside_module_class(semantics: Semantics, scope: Scope) -> bool:
    owner = scope.method_of
    return owner is not None and semantics.is_equinox_module_class(LOCAL_PREFIX + owner.name)


def _kept(semantics: Semantics, site: CallSite, position: int) -> bool:
    """Element `position` of the call's result is bound to a name that is used afterwards."""
    target = _bound_name(site, position)
    if target is None or target.value == "_":
        return False
    scope = _function_of(site.scope)
    return scope is None or _never_used(semantics, site, target, scope) is None


def _store_ids(semantics: Semantics, function: FunctionNode) -> set[int]:
    """Names in the function that are not reads: binding targets, attribute names, keywords."""
    ids: set[int] = set()
    scopes = {id(scope): scope for scope in semantics.scope_of_node.values()}
    for scope in scopes.values():
        for bindings in scope.bindings.values():
            for binding in bindings:
                ids.add(id(binding.target))
    for attribute in descendants(function, cst.Attribute):
        ids.add(id(attribute.attr))
    for arg in descendants(function, cst.Arg):
        if arg.keyword is not None:
            ids.add(id(arg.keyword))
    for augmented in descendants(function, cst.AugAssign):
        ids.discard(id(augmented.target))  # `x += 1` reads x
    return ids


def _loops_around(function: FunctionNode, binding: Binding) -> list[cst.CSTNode]:
    if not binding.loops:
        return []
    wanted = set(binding.loops)
    return [node for node in descendants(function, (cst.For, cst.While)) if id(node) in wanted]


def _caller_note(semantics: Semantics, dropped: _Dropped) -> str:
    """"`train_step` returns only `loss`, and rebinding its parameter `model` does not change
    the caller's"."""
    function = dropped.function.name.value
    returned = [r.value for r in semantics.returns.get(id(dropped.function), [])
                if r.value is not None]
    if not returned:
        note = f"`{function}` returns nothing"
    elif len(returned) == 1 and len(semantics.code_of(returned[0])) <= 40:
        note = f"`{function}` returns only `{semantics.code_of(returned[0])}`"
    else:
        note = f"`{function}` does not return it"
    if dropped.parameter:
        note += f", and rebinding its parameter `{dropped.name}` does not change the caller's"
    return note


def _dropped_model(context: _Context, site: CallSite) -> Iterator[Finding]:
    semantics = context.semantics
    spelled = (site.qualname or "").replace("equinox.", "eqx.")
    if isinstance(site.parent, cst.Expr):
        model = argument(site.node, 0, "model" if site.qualname == APPLY_UPDATES[0] else "params")
        shown = semantics.code_of(model) if model is not None else "model"
        yield Finding(
            node=site.node,
            message=(f"`{spelled}` returns the updated model and the result is discarded: "
                     f"`{shown}` is unchanged (nothing in Equinox changes in place), so "
                     f"nothing trains"),
            hint=f"Keep the result: `{shown} = {semantics.code_of(site.node)}`, and return it",
        )
        return
    scope = _function_of(site.scope)
    if scope is None:
        return
    target = _bound_name(site, None)
    if target is None:
        return
    dropped = _never_used(semantics, site, target, scope)
    if dropped is None:
        return
    why = _is_step(context, scope)
    if why is None:
        return
    function = scope.node.name.value
    yield Finding(
        node=target,
        message=(f"the updated model `{dropped.name}` is never used again: "
                 f"{_caller_note(semantics, dropped)}, so every step starts from the old "
                 f"model and nothing trains (`{function}` {why}; no error is raised)"),
        hint=f"Return it and rebind it where `{function}` is called: `return {dropped.name}, "
             f"...` and `{dropped.name}, ... = {function}(...)`; or store it "
             f"(`self.model = {dropped.name}`)",
        anchor=site.node,
    )


def _keeps_state(value: Value) -> bool:
    """Whether an optax transformation keeps state that an update advances (measured)."""
    factories = [f for f in value.factories if f not in _WRAPPERS]
    if not factories or "?" in factories:
        return False
    if "MultiSteps" in factories:
        return True
    for factory in factories:
        known = optax_transforms.TRANSFORMATIONS.get(factory)
        if known is None:
            return False
        if not known["accepts_module"]:
            return True  # its init builds per-parameter state
    call = value.call
    for factory, argument_name in optax_transforms.STATEFUL_WITH_ARGUMENT.items():
        if factory in factories and call is not None:
            given = next((a.value for a in call.args if a.keyword is not None
                          and a.keyword.value == argument_name), None)
            if given is not None and not (isinstance(given, cst.Name) and given.value == "None"):
                return True
    return False


def _dropped_opt_state(context: _Context, site: CallSite) -> Iterator[Finding]:
    semantics = context.semantics
    func = site.node.func
    assert isinstance(func, cst.Attribute)
    optimizer = semantics.infer(func.value, at=site)
    if optimizer is None or optimizer.kind != "optimizer" or not _keeps_state(optimizer):
        return
    shown = semantics.code_of(func.value)
    if isinstance(site.parent, cst.Expr):
        yield Finding(
            node=site.node,
            message=(f"`{shown}.update(...)` returns `(updates, new_opt_state)` and both are "
                     f"discarded: optax changes nothing in place, so nothing trains"),
            hint="Keep both: `updates, opt_state = ...`, then "
                 "`model = eqx.apply_updates(model, updates)`",
        )
        return
    scope = _function_of(site.scope)
    if scope is None:
        return
    target = _bound_name(site, 1)
    if target is None:
        return
    dropped = _never_used(semantics, site, target, scope)
    if dropped is None:
        return
    why = _is_step(context, scope)
    if why is None or (dropped.name == "_" and context.opt_state_kept_elsewhere(site)):
        return
    function = scope.node.name.value
    lost = " is thrown away into `_`" if dropped.name == "_" else \
        f", `{dropped.name}`, is never used again: {_caller_note(semantics, dropped)}"
    yield Finding(
        node=target,
        message=(f"the new optimizer state of `{shown}.update(...)`{lost}, so every step "
                 f"starts from the same optimizer state: moments, step counts and schedules "
                 f"never advance (`{function}` {why}; no error is raised)"),
        hint=f"Keep it and return it: `updates, opt_state = {shown}.update(...)` and "
             f"`return ..., opt_state`",
        anchor=site.node,
    )


def _model_called(semantics: Semantics, site: CallSite) -> Optional[cst.BaseExpression]:
    """The model a call evaluates: `model(...)`, `jax.vmap(model, ...)(...)`, or a name bound
    to `jax.vmap(model, ...)`."""
    func: cst.BaseExpression = site.node.func
    if isinstance(func, cst.Name):
        binding = semantics.lookup(func.value, site.scope, site.seq)
        if binding is not None and isinstance(binding.value, cst.Call) and binding.index is None \
                and semantics.qualname(binding.value.func) in VMAPS:
            func = binding.value
    if isinstance(func, cst.Call) and semantics.qualname(func.func) in VMAPS:
        return argument(func, 0, "fun")
    if isinstance(func, (cst.Name, cst.Attribute)):
        return func
    return None


def _dropped_state(context: _Context, site: CallSite) -> Iterator[Finding]:
    semantics = context.semantics
    if len(positional_args(site.node)) < 2 or any(a.keyword is not None and a.keyword.value
                                                  == "inference" for a in site.node.args):
        return
    scope = _function_of(site.scope)
    if scope is None or _bound_tuple(site) is None or not context.stateful_mentioned():
        return
    model_node = _model_called(semantics, site)
    if model_node is None or _switched_to_inference(semantics, model_node, site):
        return
    model = _model_value(context, model_node, site, scope)
    if model is None or model.kind != "module":
        return
    layer = stateful_layer(semantics, model)
    if layer is None:
        return
    position = _state_position(semantics, model)
    if position is None:
        return
    target = _bound_name(site, position)
    if target is None:
        return
    dropped = _never_used(semantics, site, target, scope)
    if dropped is None:
        return
    why = _is_training(context, scope)
    if why is None or (dropped.name == "_" and context.state_kept_elsewhere(site)):
        return
    function = scope.node.name.value
    shown = semantics.code_of(model_node)
    lost = " is thrown away into `_`" if dropped.name == "_" else \
        f", `{dropped.name}`, is never used again: {_caller_note(semantics, dropped)}"
    yield Finding(
        node=target,
        message=(f"`{shown}` holds {layer}, and the new `eqx.nn.State` it returns{lost}, so "
                 f"its running statistics never move and evaluation normalises with their "
                 f"initial values (`{function}` {why}; no error is raised)"),
        hint="Keep it and hand it out: `y, state = ...(x, state)`, then `return loss, state` "
             "(with `eqx.filter_value_and_grad(..., has_aux=True)`)",
        anchor=site.node,
    )


def _switched_to_inference(semantics: Semantics, node: cst.BaseExpression, site: CallSite
                           ) -> bool:
    if isinstance(node, cst.Call):
        return semantics.qualname(node.func) in SWITCHES
    if isinstance(node, cst.Name):
        binding = semantics.lookup(node.value, site.scope, site.seq)
        if binding is not None and isinstance(binding.value, cst.Call):
            return semantics.qualname(binding.value.func) in SWITCHES
    return False


def _model_value(context: _Context, node: cst.BaseExpression, site: CallSite, scope: Scope
                 ) -> Optional[Value]:
    """What the model holds: as the semantics infers it, or, for a parameter of a function
    handed to a grad transform, what that transform's call passes (`value_and_grad(f)(m, ...)`)."""
    semantics = context.semantics
    value = semantics.infer(node, at=site)
    if value is not None or not isinstance(node, cst.Name):
        return value
    binding = semantics.lookup(node.value, site.scope, site.seq)
    if binding is None or binding.parameter is None or binding.parameter_of is None:
        return None
    function = binding.parameter_of
    if not isinstance(function, cst.FunctionDef):
        return None
    params = parameters_of(function)
    if binding.parameter not in params:
        return None
    position = params.index(binding.parameter)
    found: list[Value] = []
    for outer in semantics.calls:
        func = outer.node.func
        if not isinstance(func, cst.Call) or semantics.qualname(func.func) not in GRADS:
            continue
        wrapped = argument(func, 0, "fun")
        if not isinstance(wrapped, cst.Name) or \
                semantics.function_named(wrapped.value, outer.scope, outer.seq) is not function:
            continue
        given = positional_args(outer.node)
        if position >= len(given):
            return None
        passed = semantics.infer(given[position], at=outer)
        if passed is None:
            return None
        found.append(passed)
    if not found or len({v.signature for v in found}) != 1:
        return None
    return found[0]


def _bound_tuple(site: CallSite) -> Optional[cst.Tuple]:
    """`a, b = <the call>`: the target tuple (a cheap test before any inference)."""
    line = site.line
    if not isinstance(line, cst.SimpleStatementLine):
        return None
    for statement in line.body:
        if isinstance(statement, cst.Assign) and statement.value is site.node \
                and len(statement.targets) == 1 and isinstance(statement.targets[0].target,
                                                               cst.Tuple):
            return statement.targets[0].target
    return None


def _state_position(semantics: Semantics, model: Value) -> Optional[int]:
    """Where in the call's result the new state is: 1 for an `eqx.nn` layer (`(x, state)`);
    for a project class, the element of every tuple its `__call__` returns that is bound
    there from a stateful layer's result (`x, state = self.norm(x, state)`)."""
    if (model.cls or "").startswith("equinox.nn."):
        return 1
    ref = semantics.class_ref_of(model)
    if ref is None:
        return None
    owner, info = ref
    call = info.methods.get("__call__")
    scope = owner.scope_of_node.get(id(call)) if call is not None else None
    if call is None or scope is None:
        return None
    positions: set[int] = set()
    for statement in owner.returns.get(id(call), []):
        value = statement.value
        if not isinstance(value, cst.Tuple):
            return None
        hits = [i for i, e in enumerate(value.elements)
                if isinstance(e.value, cst.Name) and _new_state(owner, info, scope, e.value.value)]
        if len(hits) != 1:
            return None
        positions.add(hits[0])
    return positions.pop() if len(positions) == 1 else None


def _new_state(owner: Semantics, info: ClassInfo, scope: Scope, name: str) -> bool:
    """Every binding of `name` in `__call__` is the state a stateful layer returned."""
    bindings = scope.bindings.get(name, [])
    if not bindings:
        return False
    for binding in bindings:
        if binding.parameter is not None:
            continue  # the state given; a rebinding below must still be a new one
        call = binding.value
        if not isinstance(call, cst.Call) or binding.index != 1:
            return False
        layer = owner.infer(call.func, at=binding)
        if layer is None and isinstance(call.func, cst.Attribute) \
                and isinstance(call.func.value, cst.Name) and call.func.value.value == "self":
            field_info = info.fields.get(call.func.attr.value)
            if field_info is not None and field_info.annotation is not None:
                layer = owner.annotation_value(field_info.annotation)
        if layer is None or layer.kind != "module" or stateful_layer(owner, layer) is None:
            return False
    return any(binding.parameter is None for binding in bindings)


# -- the first look (Python's ast) ---------------------------------------------------

_AnyFunction = Union[ast.FunctionDef, ast.AsyncFunctionDef]
_STATEFUL = (b"BatchNorm", b"SpectralNorm", b"StateIndex")


def _stateful_text(source: bytes, look: Optional[FirstLook]) -> bool:
    """What `_Context.stateful_mentioned` asks: a stateful layer named here or in a project
    module the file imports."""
    return any(needle in source for needle in _STATEFUL) or \
        mentioned_in_project(source, look, *_STATEFUL)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)
_DYNAMIC = frozenset({"locals", "vars", "eval", "exec"})


class _FirstLook:
    """The first look of one file: see UpdateDiscarded.may_fire."""

    def __init__(self, source: bytes, look: Optional[FirstLook], tree: ast.Module) -> None:
        self.source = source
        self.look = look
        self.tree = tree
        self._lines: Optional[list[bytes]] = None
        self._optax: Optional[bool] = None
        self._values: Optional[ValueFirstLook] = None
        self._value_and_grad: Optional[bool] = None
        self._referenced: dict[str, bool] = {}
        self._stateful: Optional[bool] = None
        self._training: Optional[bool] = None
        self.apply_updates = import_spellings(tree, APPLY_UPDATES) \
            if b"apply_updates" in source else set()

    def optimizer(self, node: ast.expr) -> bool:
        """Could `node` (what `.update` is called on) be known as an optax optimizer?"""
        if self._optax is None:
            self._optax = b"optax" in self.source or \
                mentioned_in_project(self.source, self.look, b"optax")
        if not self._optax:
            return False
        return self.values().may_hold(node)

    def values(self) -> ValueFirstLook:
        if self._values is None:
            self._values = ValueFirstLook(self.tree, self.source, self.look)
        return self._values

    def stateful_known(self) -> bool:
        if self._stateful is None:
            self._stateful = _stateful_text(self.source, self.look)
        return self._stateful

    def training_known(self) -> bool:
        if self._training is None:
            self._training = spelled_in(import_spellings(self.tree, GRADS + APPLY_UPDATES),
                                        self.source)
        return self._training

    def may_fire(self) -> bool:
        for block in statement_blocks(self.tree):
            for statement in block:
                if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call) \
                        and self._dropped_whole(statement.value):
                    return True
        for function in _functions(self.tree):
            reads: Optional[_Reads] = None
            for block, index, loops in _own_statements(function):
                statement = block[index]
                if not isinstance(statement, ast.Assign) or len(statement.targets) != 1 \
                        or not isinstance(statement.value, ast.Call):
                    continue
                names = self._bound_names(statement.targets[0], statement.value,
                                          lambda: self._maybe_step(function))
                if not names:
                    continue
                if reads is None:
                    reads = _Reads(function)
                end = self._chain_end(block, index)
                if any(reads.maybe_unused(name, end, loops) for name in names):
                    return True
        return False

    def _dropped_whole(self, call: ast.Call) -> bool:
        """`eqx.apply_updates(...)` or `optim.update(...)` as a statement."""
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr == "update" and self.optimizer(func.value):
            return True
        return bool(self.apply_updates) and ast_dotted_name(func) in self.apply_updates

    def _bound_names(self, target: ast.expr, call: ast.Call,
                     maybe_step: Callable[[], bool]) -> list[str]:
        """The names of `target = call` whose value the check may find dropped."""
        func = call.func
        if isinstance(target, ast.Name):
            if self.apply_updates and ast_dotted_name(func) in self.apply_updates and maybe_step():
                return [target.id]
            return []
        if not isinstance(target, (ast.Tuple, ast.List)) or \
                any(isinstance(e, ast.Starred) for e in target.elts):
            return []
        names: list[str] = []
        elements = target.elts
        if isinstance(func, ast.Attribute) and func.attr == "update" and len(elements) > 1 \
                and isinstance(elements[1], ast.Name) and self.optimizer(func.value) \
                and maybe_step():
            names.append(elements[1].id)  # the new optimizer state
        if isinstance(target, ast.Tuple) \
                and sum(not isinstance(a, ast.Starred) for a in call.args) >= 2 \
                and not any(k.arg == "inference" for k in call.keywords) \
                and self.stateful_known() and self.training_known() \
                and self.values().may_be_known(func):
            names.extend(e.id for e in elements if isinstance(e, ast.Name))  # a new State
        return names

    def _maybe_step(self, function: _AnyFunction) -> bool:
        """Could `_is_step` hold: the def is decorated (a jit), its name occurs elsewhere
        in the file (handed to a transform or `lax` loop, called in a loop, as `self.name`
        too), or the file spells a `value_and_grad` (whose loss it may return)?"""
        if function.decorator_list:
            return True
        if self._value_and_grad is None:
            self._value_and_grad = spelled_in(import_spellings(self.tree, VALUE_AND_GRADS),
                                              self.source)
        if self._value_and_grad:
            return True
        name = function.name
        known = self._referenced.get(name)
        if known is None:
            known = self._referenced[name] = named_besides_definition(self.source, name)
        return known

    def _chain_end(self, block: list[ast.stmt], index: int) -> int:
        """The last line of the statement's logical line (libcst's SimpleStatementLine):
        statements after it on the same line (`;`), or after a line ending in `\\`."""
        if self._lines is None:
            self._lines = self.source.split(b"\n")
        end = block[index].end_lineno or block[index].lineno
        while index + 1 < len(block):
            following = block[index + 1]
            joined = following.lineno <= end or (
                end <= len(self._lines) and self._lines[end - 1].rstrip().endswith(b"\\"))
            if not joined:
                break
            index += 1
            end = max(end, following.end_lineno or following.lineno)
        return end


def _functions(tree: ast.Module) -> Iterator[_AnyFunction]:
    for block in statement_blocks(tree):
        for statement in block:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield statement


def _own_statements(function: _AnyFunction
                    ) -> Iterator[tuple[list[ast.stmt], int, tuple[ast.stmt, ...]]]:
    """The statements of the function's own scope (not of nested defs and classes), each as
    (its block, its index there, the loops around it inside the function)."""
    pending: list[tuple[list[ast.stmt], tuple[ast.stmt, ...]]] = [(function.body, ())]
    while pending:
        block, loops = pending.pop()
        for index, statement in enumerate(block):
            yield block, index, loops
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            inner = loops + (statement,) if isinstance(statement, _LOOPS) else loops
            for value in vars(statement).values():
                if not isinstance(value, list) or not value:
                    continue
                if isinstance(value[0], ast.stmt):
                    pending.append((value, inner))
                elif isinstance(value[0], (ast.excepthandler, ast.match_case)):
                    pending.extend((item.body, inner) for item in value)


class _Reads:
    """The reads of names in one function's body, as few as the check's `_never_used` sees
    (a load in `ast` is a read there; libcst sees more: `del x`, match captures)."""

    def __init__(self, function: _AnyFunction) -> None:
        self.lines: dict[str, list[int]] = {}
        self.nested: set[str] = set()
        self.declared: set[str] = set()
        self.dynamic = False
        for statement in function.body:
            for node in walk(statement):
                if isinstance(node, ast.Name):
                    if isinstance(node.ctx, ast.Load):
                        self.lines.setdefault(node.id, []).append(node.lineno)
                        if node.id in _DYNAMIC:
                            self.dynamic = True
                elif isinstance(node, (ast.Global, ast.Nonlocal)):
                    self.declared.update(node.names)
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                    self.nested.update(inner.id for inner in walk(node)
                                       if isinstance(inner, ast.Name)
                                       and isinstance(inner.ctx, ast.Load))
        self._in_loop: dict[int, set[str]] = {}

    def maybe_unused(self, name: str, end: int, loops: tuple[ast.stmt, ...]) -> bool:
        if self.dynamic or name in self.declared or name in self.nested:
            return False
        if any(line > end for line in self.lines.get(name, ())):
            return False
        for loop in loops:
            read = self._in_loop.get(id(loop))
            if read is None:
                read = self._in_loop[id(loop)] = {
                    node.id for node in walk(loop)
                    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
            if name in read:
                return False
        return True
