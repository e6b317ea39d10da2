"""EQX501: Dropout or BatchNorm still in training mode when the model is evaluated."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.diagnostics import Diagnostic
from eqxlint.rules.base import PROJECT_IMPORT, Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import (FirstLook, import_aliases, may_name, mentioned_in_project,
                                      statement_blocks, walk)
from eqxlint.semantics import (Binding, CallSite, ClassInfo, Scope, Semantics, Value, argument,
                               dotted_name, keyword_arg, positional_args)
from eqxlint.semantics.syntax import parameters_of

SWITCHES = ("equinox.nn.inference_mode", "equinox.tree_inference")
# Callables that capture the model they are built from: (qualified name, keyword of the model).
WRAPPERS = {"jax.vmap": "fun", "equinox.filter_vmap": "fun", "functools.partial": "func",
            "equinox.Partial": "func", "equinox.filter_jit": "fun", "jax.jit": "fun",
            "equinox.filter_pmap": "fun", "jax.pmap": "fun"}
if TYPE_CHECKING:
    from eqxlint.runtime.checker import RuntimeContext


class DropoutActiveAtEval(Rule):
    code = "EQX501"
    name = "dropout-active-at-eval"
    summary = "A model evaluated with Dropout/BatchNorm still in training mode"
    fix_applicability = "safe"
    # What may_fire tests, as the engine's trigger list (documentation of the needles).
    triggers = ((b"inference_mode", b"tree_inference", b"Dropout", PROJECT_IMPORT),)
    what_it_does = """
        Statically, three shapes:
        - `eqx.nn.inference_mode(model)` (or `eqx.tree_inference(model, True)`) whose
          result is thrown away. It returns a new model, as everything in Equinox does;
          unlike PyTorch's `model.eval()` it changes nothing in place, so `model` is still
          in training mode.
        - `batched = jax.vmap(model)` (or `eqx.filter_vmap`, `functools.partial`,
          `eqx.Partial`, a jit of the module) built before `model =
          eqx.nn.inference_mode(model)`, and called after it: the callable holds the old
          model, still in training mode.
        - a function whose name says it evaluates (`eval`, `evaluate*`, `validate*`,
          `val_*`, `test_*` outside a pytest file, `*_eval*`) that runs a model, directly,
          through `jax.vmap`, or through a helper of the file, with a key, where the
          model's class (as the file's callers or the parameter's annotation show it)
          holds an `eqx.nn.Dropout` built in training mode with a rate other than 0 that
          its `__call__` runs with that key, and no switch to inference is on the way: not
          in the function, not in the helper, not where it is called.

        At runtime, with `check_model(model, mode="eval")`: every layer whose `inference`
        flag is `False` (`eqx.nn.Dropout`, `eqx.nn.BatchNorm`, the dropout inside
        `eqx.nn.MultiheadAttention`, modules of your own that follow the convention).
        A dropout with rate 0 is the identity in either mode and is not reported.
    """
    why_bad = """
        In training mode Dropout zeroes activations at random (and needs a `key`), and
        BatchNorm uses the batch's statistics and updates its running ones. Evaluation
        numbers come out noisy and wrong, with no error at all.
    """
    example = """
        eqx.nn.inference_mode(model)
        accuracy = evaluate(model, test_data)
    """
    use_instead = """
        model = eqx.nn.inference_mode(model)
        accuracy = evaluate(model, test_data)
    """
    fix_safety = """
        Safe: the fix assigns the result back to the name or attribute it was computed
        from (`model = eqx.nn.inference_mode(model)`), which is what the call was for.
    """
    runtime = """
        `check_model(model, mode="eval")` reports each layer in training mode by path
        (`model.layers[2]`) and points to `eqx.nn.inference_mode(model)`.
    """
    real_error = """
        None: the results are silently wrong. Measured (jax 0.10.2, equinox 0.13.8, warnings
        as errors), a `Net` with `eqx.nn.Dropout(0.5)`: `batched = jax.vmap(model, in_axes=(0,
        None))`, then `model = eqx.nn.inference_mode(model)`, then `batched(x, key)` gives
        different outputs for two keys (the rebuilt `jax.vmap(model, ...)` gives equal ones),
        and a `functools.partial(model, key=...)` built before the switch differs from the
        inference output. Only without a key does training mode fail loudly:
        `RuntimeError: Dropout requires a key when running in non-deterministic mode.`
    """
    known_limits = """
        The old callable must be bound to a name in the same function (or module) as the
        switch, and called by that name after it. The evaluation-function check needs the
        function's name to say it evaluates, at least one caller in the file (so that a
        switch where it is called can be seen) and no switch anywhere in the file
        (`inference_mode`, `tree_inference` or an `inference=` argument: the value model
        follows a module's structure through `inference_mode`, not its mode, so a switch
        two calls up could not be told apart), the Dropout as a direct field of a class
        of the project, and the key given at the position or keyword that the class's
        `__call__` passes to it; a class that passes `inference=` to its Dropout chooses
        the mode itself and is not reported. Monte Carlo dropout on purpose inside a
        function named `evaluate` would be reported. Elsewhere, whether a model reaching
        an evaluation is in inference mode needs the runtime check.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx

            eqx.nn.inference_mode(model)  # expect: EQX501
            accuracy = evaluate(model, test_data)
        """, "the headline case"),
        Bad("""
            import equinox

            def evaluate(model, data):
                equinox.nn.inference_mode(model, value=True)  # expect: EQX501
                return sum(model(x) for x in data)
        """, "module import, value=True"),
        Bad("""
            import equinox as eqx

            eqx.tree_inference(model, True)  # expect: EQX501
        """, "the older tree_inference"),
        Bad("""
            from equinox.nn import inference_mode

            class Trainer:
                def validate(self):
                    inference_mode(self.model)  # expect: EQX501
                    return self.loss(self.model)
        """, "from-import, attribute of self"),
        Bad("""
            import equinox as eqx

            for checkpoint in checkpoints:
                model = load(checkpoint)
                eqx.nn.inference_mode(model)  # expect: EQX501
                scores.append(score(model))
        """, "in a loop"),
        Bad("""
            import equinox as eqx

            if evaluating:
                eqx.nn.inference_mode(model=net)  # expect: EQX501
        """, "keyword argument, in a branch"),
        Bad("""
            import equinox as eqx
            import jax

            batched_model = jax.vmap(model)
            for x, y in train_loader:
                model, opt_state = step(model, opt_state, x, y)
            model = eqx.nn.inference_mode(model)
            test_logits = batched_model(x_test)  # expect: EQX501
        """, "jax.vmap built from the training model, evaluated after the switch"),
        Bad("""
            import functools
            import equinox as eqx

            def evaluate(model, dataset):
                forward = functools.partial(model, key=None)
                model = eqx.nn.inference_mode(model)
                return [forward(x) for x in dataset]  # expect: EQX501
        """, "functools.partial of the model, in an evaluation function"),
        Bad("""
            from equinox.nn import inference_mode as to_eval

            (to_eval(model))  # expect: EQX501
        """, "an alias of the import, in parentheses (the first look's boundary)"),
        Bad("""
            import equinox as eqx
            from jax import vmap as batch

            forward = batch(model)
            model = eqx.nn.inference_mode(
                model
            )
            logits = forward(x_test)  # expect: EQX501
        """, "an alias of jax.vmap, the switch over several lines (the first look's boundary)"),
        Bad("""
            import equinox as eqx

            def test_accuracy(model, x, y):
                batched = eqx.filter_vmap(model, in_axes=(0, None))
                model = eqx.nn.inference_mode(model)
                logits = batched(x, None)  # expect: EQX501
                return (logits.argmax(-1) == y).mean()
        """, "eqx.filter_vmap with in_axes"),
        Bad("""
            import equinox as eqx

            predict = eqx.filter_jit(model)
            model = eqx.tree_inference(model, True)
            print(predict(x_test))  # expect: EQX501
        """, "eqx.filter_jit of the module, the older tree_inference"),
        Bad("""
            import equinox as eqx
            import jax

            for epoch in range(num_epochs):
                batched = jax.vmap(model)
                model = train_one_epoch(model, batched, loader)
                model = eqx.nn.inference_mode(model, value=True)
                val_logits = batched(x_val)  # expect: EQX501
                model = eqx.nn.inference_mode(model, value=False)
        """, "inside the epoch loop, value=True"),
        Bad("""
            from functools import partial
            from equinox.nn import inference_mode

            net_fn = partial(net, state=state)
            net = inference_mode(net)
            y_pred, _ = net_fn(x_test)  # expect: EQX501
        """, "from-imports, a partial holding the state too"),
        Bad("""
            import equinox as eqx
            import jax
            import jax.numpy as jnp
            import optax

            class AlexNet(eqx.Module):
                dense: eqx.nn.Linear
                dropout1: eqx.nn.Dropout

                def __init__(self, *, key):
                    self.dense = eqx.nn.Linear(4096, 1, key=key)
                    self.dropout1 = eqx.nn.Dropout()

                def __call__(self, x, key):
                    key, subkey = jax.random.split(key)
                    return self.dense(self.dropout1(x, key=subkey))

            def loss_fn(alexnet: AlexNet, x, y, key):
                logits = eqx.filter_vmap(alexnet, in_axes=(0, None))(x, key)
                return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y)), logits

            def eval(alexnet: AlexNet, test_dataset, key):
                for x, y in test_dataset:
                    key, subkey = jax.random.split(key)
                    loss, logits = loss_fn(alexnet, x, y, subkey)  # expect: EQX501

            alexnet = AlexNet(key=jax.random.key(42))
            metrics = eval(alexnet, test_dataset, jax.random.key(0))
        """, "the test loss computed through the training loss (Artur-Galstyan/ml-journey)"),
        Bad("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def evaluate(model, x_test, key):
                return jax.vmap(model, in_axes=(0, None))(x_test, key)  # expect: EQX501

            model = Net(jax.random.key(0))
            accuracy = evaluate(model, x_test, jax.random.key(1))
        """, "jax.vmap of the model, a key for the whole batch"),
        Bad("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            @eqx.filter_jit
            def val_step(model, x, y, key):
                keys = jax.random.split(key, x.shape[0])
                logits = jax.vmap(model)(x, keys)  # expect: EQX501
                return (logits.argmax(-1) == y).mean()

            model = Net(jax.random.key(0))
            for x, y in val_loader:
                acc = val_step(model, x, y, key)
        """, "a jitted val_step with one key per example"),
        Bad("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def compute_eval_loss(model, batch, key):
                x, y = batch
                pred = model(x, key=key)  # expect: EQX501
                return ((pred - y) ** 2).mean()

            net = Net(jax.random.key(0))
            print(compute_eval_loss(net, batch, jax.random.key(2)))
        """, "the key as a keyword"),
        Bad("""
            import equinox as eqx
            import jax

            class Classifier(eqx.Module):
                head: eqx.nn.Linear
                drop: eqx.nn.Dropout

                def __init__(self, key):
                    self.head = eqx.nn.Linear(8, 3, key=key)
                    self.drop = eqx.nn.Dropout(p=0.1)

                def __call__(self, x, *, key):
                    k1, k2 = jax.random.split(key)
                    return self.head(self.drop(x, key=k1))

            def test_epoch(classifier: Classifier, loader, key):
                correct = 0
                for x, y in loader:
                    key, sub = jax.random.split(key)
                    correct += (classifier(x, key=sub).argmax() == y).sum()  # expect: EQX501
                return correct

            test_epoch(Classifier(jax.random.key(0)), loader, jax.random.key(1))
        """, "a keyword-only key split inside the model, a test_epoch of a training script"),
        Bad("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def validate(model, loader, key):
                losses = []
                for x, y in loader:
                    key, subkey = jax.random.split(key)
                    losses.append(loss(model, x, y, subkey))  # expect: EQX501
                return sum(losses) / len(losses)

            def loss(model, x, y, key):
                return ((jax.vmap(model, in_axes=(0, None))(x, key) - y) ** 2).mean()

            model = Net(jax.random.key(0))
            validate(model, val_loader, jax.random.key(3))
        """, "through a helper defined after it"),
    )
    good_examples = (
        Good("""
            import equinox as eqx

            model = eqx.nn.inference_mode(model)
        """, "assigned back"),
        Good("""
            import equinox as eqx

            eval_model = eqx.nn.inference_mode(model)
        """, "assigned to another name"),
        Good("""
            import equinox as eqx

            return_value = evaluate(eqx.nn.inference_mode(model), data)
        """, "used directly"),
        Good("""
            import equinox as eqx

            def to_eval(model):
                return eqx.nn.inference_mode(model)
        """, "returned"),
        Good("""
            import equinox as eqx

            train_model = eqx.nn.inference_mode(model, value=False)
        """, "switching back to training, assigned"),
        Good("""
            def inference_mode(model):
                print(model)

            inference_mode(model)
        """, "a function of the user's"),
        Good("""
            import torch

            model.eval()
        """, "PyTorch's in-place eval"),
        Good("""
            import equinox as eqx

            models = [eqx.nn.inference_mode(m) for m in models]
        """, "in a comprehension"),
        Good("""
            import equinox as eqx
            import jax

            batched = jax.vmap(model)
            train(batched, data)
            model = eqx.nn.inference_mode(model)
            batched = jax.vmap(model)
            accuracy = batched(x_test)
        """, "the batched callable built again after switching"),
        Good("""
            import equinox as eqx
            import jax

            model = eqx.nn.inference_mode(model)
            batched = jax.vmap(model)
            accuracy = batched(x_test)
        """, "switched before the callable is built"),
        Good("""
            import equinox as eqx
            import jax

            batched = jax.vmap(model, in_axes=(0, None))
            eval_model = eqx.nn.inference_mode(model)
            loss = batched(x, key)
            accuracy = jax.vmap(eval_model)(x_test)
        """, "the inference model under another name; the old callable keeps training"),
        Good("""
            import equinox as eqx
            import jax

            batched_loss = jax.vmap(loss_fn, in_axes=(None, 0, 0))
            model = eqx.nn.inference_mode(model)
            test_loss = batched_loss(model, x_test, y_test)
        """, "the callable takes the model as an argument: it gets the new one"),
        Good("""
            import equinox as eqx
            import jax

            predict = jax.vmap(model)
            model = eqx.nn.inference_mode(model, value=False)
            preds = predict(x)
        """, "switched back to training: not an evaluation with dropout"),
        Good("""
            import equinox as eqx
            import jax

            batched = jax.vmap(model)
            train_logits = batched(x_train)
            model = eqx.nn.inference_mode(model)
            test_logits = jax.vmap(model)(x_test)
        """, "the old callable is used only before the switch"),
        Good("""
            import equinox as eqx
            import jax

            def train(model, x):
                batched = jax.vmap(model)
                return batched(x)

            def evaluate(model, x):
                model = eqx.nn.inference_mode(model)
                batched = jax.vmap(model)
                return batched(x)
        """, "each function builds its own callable"),
        Good("""
            import functools
            import equinox as eqx

            forward = functools.partial(model, key=None)
            model = eqx.tree_inference(model, True)
            forward = functools.partial(model, key=None)
            scores = [forward(x) for x in test_set]
        """, "tree_inference, and the partial rebuilt"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def evaluate(model, x_test, key):
                model = eqx.nn.inference_mode(model)
                return jax.vmap(model, in_axes=(0, None))(x_test, key)

            model = Net(jax.random.key(0))
            evaluate(model, x_test, jax.random.key(1))
        """, "switched to inference inside the evaluation"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def evaluate(model, x_test, key):
                return jax.vmap(model, in_axes=(0, None))(x_test, key)

            model = Net(jax.random.key(0))
            evaluate(eqx.nn.inference_mode(model), x_test, jax.random.key(1))
        """, "the caller passes the inference model"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def evaluate(model, x_test, key):
                return jax.vmap(model, in_axes=(0, None))(x_test, key)

            model = Net(jax.random.key(0))
            model = eqx.nn.inference_mode(model)
            evaluate(model, x_test, jax.random.key(1))
        """, "the caller switched the model before"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                dropout: eqx.nn.Dropout

                def __init__(self):
                    self.dropout = eqx.nn.Dropout(0.0)

                def __call__(self, x, key):
                    return self.dropout(x, key=key)

            def evaluate(model, x, key):
                return model(x, key)

            evaluate(Net(), x, key)
        """, "a rate of 0: the identity in either mode"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                dropout: eqx.nn.Dropout

                def __init__(self, p):
                    self.dropout = eqx.nn.Dropout(p, inference=True)

                def __call__(self, x, key):
                    return self.dropout(x, key=key)

            def evaluate(model, x, key):
                return model(x, key)

            evaluate(Net(0.5), x, key)
        """, "built in inference mode"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                dropout: eqx.nn.Dropout

                def __init__(self):
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key, train: bool):
                    return self.dropout(x, key=key, inference=not train)

            def evaluate(model, x, key):
                return model(x, key, False)

            evaluate(Net(), x, key)
        """, "the class chooses the mode from an argument"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def evaluate(model, x_test):
                return jax.vmap(model, in_axes=(0, None))(x_test, None)

            evaluate(Net(jax.random.key(0)), x_test)
        """, "no key: Dropout in training mode would raise, not run silently"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def train_step(model, x, y, key):
                pred = jax.vmap(model, in_axes=(0, None))(x, key)
                return ((pred - y) ** 2).mean()

            def mc_dropout_predict(model, x, key):
                keys = jax.random.split(key, 32)
                return jax.vmap(lambda k: model(x, k))(keys).mean(0)

            model = Net(jax.random.key(0))
            train_step(model, x, y, key)
            mc_dropout_predict(model, x, key)
        """, "training, and Monte Carlo dropout on purpose: not evaluation functions"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def evaluate(model, x_test, key):
                return jax.vmap(model, in_axes=(0, None))(x_test, key)
        """, "no caller in the file: what it is given is not known"),
        Good("""
            import equinox as eqx
            import jax

            class Net(eqx.Module):
                linear: eqx.nn.Linear
                dropout: eqx.nn.Dropout

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 2, key=key)
                    self.dropout = eqx.nn.Dropout(0.5)

                def __call__(self, x, key):
                    return self.linear(self.dropout(x, key=key))

            def evaluate(model, x_test, key):
                return jax.vmap(model, in_axes=(0, None))(x_test, key)

            def run_eval(model, x_test, key):
                return evaluate(model, x_test, key)

            def main():
                model = eqx.nn.inference_mode(Net(jax.random.key(0)))
                run_eval(model, x_test, jax.random.key(1))
        """, "switched two calls up: a switch anywhere in the file may be on the way"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx

            eqx.nn.inference_mode(model)  # switch dropout off
        """, """
            import equinox as eqx

            model = eqx.nn.inference_mode(model)  # switch dropout off
        """),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """Each shape's needs, on Python's `ast` (the word tests run first):
        - a discarded switch: an expression statement that is a call of a name that may
          resolve to a switch (its dotted spelling ends in `inference_mode` or
          `tree_inference`, or is a name imported as one);
        - a stale callable: `m = <switch>(m, ...)` (one name target, the same name given
          first), and somewhere a name bound to a call of a wrapper (`vmap`,
          `filter_vmap`, `partial`, `Partial`, a jit or pmap, or a name imported as one)
          given `m` first, and a call of that name;
        - an evaluation with dropout, only where neither switch word nor `inference=`
          occurs (the check gives up there): a def named as an evaluation (`_EVAL_NAME`)
          that may run one of its parameters (see _may_run_a_parameter) and that the file
          calls by its name, and `Dropout` here or in a project module the file imports.
        Sound: each is a superset of what the check asks (anywhere, in any order)."""
        if not cls.static:
            return False
        if b"inference_mode" in source or b"tree_inference" in source:
            return _may_switch_wrongly(source, look)
        # Every evaluation name holds `val` (eval, validate) or `test`.
        if b"inference=" in source or (b"val" not in source and b"test" not in source) \
                or not any(_EVAL_NAME.search(name.decode("utf-8", "replace"))
                           for name in _DEF_NAME.findall(source)):
            return False  # the evaluation shape needs a def named as an evaluation
        if b"Dropout" not in source and not mentioned_in_project(source, look, b"Dropout"):
            return False
        tree = (look or FirstLook(source)).tree(newer_syntax=True)
        if tree is None:
            return True
        evaluations = [statement for block in statement_blocks(tree) for statement in block
                       if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef))
                       and _EVAL_NAME.search(statement.name)]
        if evaluations:
            # Names bound to a call anywhere (`batched = jax.vmap(model)`): the model such
            # a name runs is found through the binding its scope sees, here or outside.
            bound_calls = [(node.targets if isinstance(node, ast.Assign) else [node.target],
                            node.value) for node in walk(tree)
                           if isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr))
                           and isinstance(node.value, ast.Call)]
            evaluations = [function for function in evaluations
                           if _may_run_a_parameter(function, bound_calls)]
        names = {function.name for function in evaluations}
        return bool(names) and any(
            isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in names for node in walk(tree))

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        yield from _discarded(semantics)
        yield from _stale_callables(semantics)
        yield from _evaluated_with_dropout(semantics)

    def check_runtime(self, context: "RuntimeContext") -> Iterator[Diagnostic]:
        if context.mode != "eval":
            return
        for path, module in context.modules:
            if getattr(module, "inference", None) is not False:
                continue
            if isinstance(getattr(module, "p", None), (int, float)) and module.p == 0:
                continue  # dropout with rate 0 is the identity in either mode
            yield context.diagnostic(
                self, path,
                f"is a {type(module).__name__} in training mode (`inference=False`) while the "
                f"model is evaluated",
                "Switch every layer to inference: `model = eqx.nn.inference_mode(model)`")


_SWITCH_NAMES = frozenset({"inference_mode", "tree_inference"})
_WRAPPER_NAMES = frozenset(name.rsplit(".", 1)[1] for name in WRAPPERS)


def _may_run_a_parameter(function: "ast.FunctionDef | ast.AsyncFunctionDef",
                         bound_calls: "list[tuple[list[ast.expr], ast.Call]]") -> bool:
    """Could `_evaluation_with_key` find a call in `function` that runs one of its
    positional parameters: called by its name, through `jax.vmap(p)(...)` (any call of a
    call), through a name bound (anywhere in the file) to a call given a name `p`, or
    through a helper given `p` positionally?"""
    arguments = function.args
    params = {arg.arg for arg in arguments.posonlyargs + arguments.args}
    if not params:
        return False
    bound = {target.id for targets, value in bound_calls if _given_one_of(value, params)
             for target in targets if isinstance(target, ast.Name)}
    for call in (node for node in walk(function) if isinstance(node, ast.Call)):
        func = call.func
        if isinstance(func, ast.Call):
            return True
        if isinstance(func, ast.Name) and (func.id in params or func.id in bound or any(
                isinstance(arg, ast.Name) and arg.id in params for arg in call.args)):
            return True
    return False


def _given_one_of(call: ast.Call, names: set[str]) -> bool:
    values = list(call.args) + [keyword.value for keyword in call.keywords]
    return any(isinstance(value, ast.Name) and value.id in names for value in values)


def _may_switch_wrongly(source: bytes, look: Optional[FirstLook]) -> bool:
    """The first look for a discarded switch and for a callable built before the switch."""
    tree = (look or FirstLook(source)).tree(newer_syntax=True)
    if tree is None:
        return True
    switches = import_aliases(tree, *_SWITCH_NAMES)
    in_place: set[str] = set()
    for block in statement_blocks(tree):
        for statement in block:
            value = getattr(statement, "value", None)
            if not isinstance(value, ast.Call) or not may_name(value.func, _SWITCH_NAMES, switches):
                continue
            if isinstance(statement, ast.Expr):
                return True  # its result discarded
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1 \
                    and isinstance(statement.targets[0], ast.Name):
                given = value.args[:1] + [k.value for k in value.keywords
                                          if k.arg in ("model", "pytree")]
                if any(isinstance(g, ast.Name) and g.id == statement.targets[0].id
                       for g in given):
                    in_place.add(statement.targets[0].id)
    if not in_place:
        return False
    # A name bound to a wrapper of a switched name (`batched = jax.vmap(model)`), then
    # called by that name.
    wrappers = import_aliases(tree, *_WRAPPER_NAMES)
    wrapping: set[str] = set()
    called: set[str] = set()
    for node in walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                called.add(node.func.id)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.NamedExpr)):
            value = node.value
            if not isinstance(value, ast.Call) or not may_name(value.func, _WRAPPER_NAMES, wrappers):
                continue
            given = value.args[:1] + [k.value for k in value.keywords if k.arg in ("fun", "func")]
            if any(isinstance(g, ast.Name) and g.id in in_place for g in given):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                wrapping.update(t.id for t in targets if isinstance(t, ast.Name))
    return not wrapping.isdisjoint(called)


def _discarded(semantics: Semantics) -> Iterator[Finding]:
    """`eqx.nn.inference_mode(model)` as a statement: its result thrown away."""
    for site in semantics.calls:
        if site.qualname not in SWITCHES or not isinstance(site.parent, cst.Expr):
            continue
        model = argument(site.node, 0, "model" if site.qualname == SWITCHES[0] else "pytree")
        target = dotted_name(model) if model is not None else None
        call_text = semantics.code_of(site.node)
        replacements: tuple = ()
        if target is not None:
            assignment = cst.parse_statement(f"{target} = {call_text}\n").body[0]
            replacements = ((site.parent, assignment),)
        shown = target or "model"
        yield Finding(
            node=site.node,
            message=(f"`{call_text}` returns a new model and the result is discarded: "
                     f"`{shown}` is still in training mode (nothing in Equinox changes in "
                     f"place)"),
            hint=f"Keep the result: `{shown} = {call_text}`",
            replacements=replacements,
            fix_message=f"Assign the result to `{shown}`",
        )


def _stale_callables(semantics: Semantics) -> Iterator[Finding]:
    """`batched = jax.vmap(model)`, then `model = eqx.nn.inference_mode(model)`, then
    `batched(x)`: the callable still holds the model in training mode."""
    for site in semantics.calls:
        if site.qualname not in SWITCHES:
            continue
        switched = _rebound_name(site)
        if switched is None or not _switches_on(site):
            continue
        switch_binding = next((b for b in site.scope.bindings.get(switched, [])
                               if b.value is site.node), None)
        if switch_binding is None:
            continue
        for name, bindings in site.scope.bindings.items():
            for wrapper in bindings:
                if wrapper.seq >= site.seq or wrapper.index is not None \
                        or not isinstance(wrapper.value, cst.Call):
                    continue
                wrap = semantics.qualname(wrapper.value.func)
                if wrap not in WRAPPERS:
                    continue
                wrapped = argument(wrapper.value, 0, WRAPPERS[wrap])
                if not isinstance(wrapped, cst.Name) or wrapped.value != switched:
                    continue
                stale = _first_call_after(semantics, name, wrapper, site)
                if stale is None:
                    continue
                spelled = wrap.replace("equinox.", "eqx.")
                yield Finding(
                    node=stale.node,
                    message=(f"`{name}` was built by `{spelled}({switched}, ...)` before "
                             f"`{switched} = {semantics.code_of(site.node)}`: it still holds "
                             f"the model in training mode, so this call runs with dropout "
                             f"active (and BatchNorm on batch statistics)"),
                    hint=f"Build it again after switching: `{name} = "
                         f"{semantics.code_of(wrapper.value)}`",
                )
                break


def _switches_on(site: CallSite) -> bool:
    """The call switches inference on: `value` left out or the literal `True`."""
    value = argument(site.node, 1, "value")
    if value is None:
        return site.qualname == SWITCHES[0]  # tree_inference has no default
    return isinstance(value, cst.Name) and value.value == "True"


def _rebound_name(site: CallSite) -> Optional[str]:
    """`model = eqx.nn.inference_mode(model)`: the name switched in place, else None."""
    line = site.line
    if not isinstance(line, cst.SimpleStatementLine):
        return None
    model = argument(site.node, 0, "model" if site.qualname == SWITCHES[0] else "pytree")
    if not isinstance(model, cst.Name):
        return None
    for statement in line.body:
        if isinstance(statement, cst.Assign) and statement.value is site.node \
                and len(statement.targets) == 1 \
                and isinstance(statement.targets[0].target, cst.Name) \
                and statement.targets[0].target.value == model.value:
            return model.value
    return None


def _first_call_after(semantics: Semantics, name: str, wrapper: Binding, switch: CallSite
                      ) -> Optional[CallSite]:
    """The first call of `name` after the switch that still sees `wrapper`'s binding."""
    for site in semantics.calls:
        if site.seq <= switch.seq or not isinstance(site.node.func, cst.Name) \
                or site.node.func.value != name or not site.scope.is_within(switch.scope):
            continue
        if semantics.lookup(name, site.scope, site.seq) is wrapper:
            return site
    return None


# A function whose name says it evaluates: `eval`, `evaluate_model`, `validate`, `val_step`,
# `test_epoch`, `compute_eval_loss` (a `test_*` def of a pytest file is a test, not this).
_EVAL_NAME = re.compile(r"^(?:eval|evaluate|evaluation|validate|validation|val|test)(?:_|$)|"
                        r"_(?:eval|evaluate|evaluation|validate|validation)(?:_|$)")
# What follows `def` (and the whitespace or continuations Python allows there): a superset
# of every def's name, whatever its characters.
_DEF_NAME = re.compile(rb"\bdef(?:[ \t\x0c]|\\\r?\n)+([^\s(\\]+)")
_PYTEST_FILE = re.compile(r"(?:^test_.*|.*_test|^conftest)\.py$")
_KEY_SPLITS = ("jax.random.split", "jax.random.fold_in")
_VMAPS = ("jax.vmap", "equinox.filter_vmap")


@dataclass(frozen=True)
class _TrainingDropout:
    """A project class whose `__call__` runs an `eqx.nn.Dropout` in training mode with the
    key it is given."""

    cls: str
    field: str
    key_position: Optional[int]  # among `__call__`'s parameters after `self`; None: keyword-only
    key_name: str


def _evaluated_with_dropout(semantics: Semantics) -> Iterator[Finding]:
    """An evaluation function runs a model whose Dropout is in training mode, with a key."""
    if not semantics.mentions("Dropout"):
        return
    text = semantics.text if semantics.text is not None else semantics.module.code
    if any(switch in text for switch in ("inference_mode", "tree_inference", "inference=")):
        return  # a switch anywhere in the file may be on the way (the value model keeps
        # a module's structure through `inference_mode`, not its mode)
    pytest_file = semantics.path is not None and _PYTEST_FILE.match(semantics.path.name) is not None
    for function in semantics.function_list:
        name = function.name.value
        if not _EVAL_NAME.search(name) or (pytest_file and name.startswith("test")):
            continue
        scope = semantics.scope_of_node.get(id(function))
        if scope is None or _switches_inside(semantics, scope):
            continue
        callers = [site for site in semantics.calls if isinstance(site.node.func, cst.Name)
                   and site.node.func.value == name
                   and semantics.function_named(name, site.scope, site.seq) is function]
        if not callers or any(_switches_inside(semantics, site.scope, shallow=True)
                              or _switched_argument(semantics, site) for site in callers):
            continue
        for param in parameters_of(function):
            found = _evaluation_with_key(semantics, function, scope, param)
            if found is not None:
                site, dropout = found
                shown = param.name.value
                yield Finding(
                    node=site.node,
                    message=(f"`{name}` evaluates `{shown}`, whose `{dropout.cls}.{dropout.field}` "
                             f"is an `eqx.nn.Dropout` in training mode, and passes it a key: "
                             f"dropout is active, so the evaluation's numbers are noisy and "
                             f"wrong"),
                    hint=f"Switch it off first: `{shown} = eqx.nn.inference_mode({shown})` at "
                         f"the start of `{name}`",
                )
                break


def _switches_inside(semantics: Semantics, scope: Scope, shallow: bool = False) -> bool:
    """A switch to inference (or a `tree_at`, or an `inference=` argument) in the scope."""
    for site in semantics.calls:
        inside = site.scope is scope if shallow else site.scope.is_within(scope)
        if not inside:
            continue
        if site.qualname in SWITCHES or site.qualname == "equinox.tree_at" or \
                any(arg.keyword is not None and arg.keyword.value in ("inference", "deterministic")
                    for arg in site.node.args):
            return True
    return False


def _switched_argument(semantics: Semantics, site: CallSite) -> bool:
    for arg in site.node.args:
        value = arg.value
        if isinstance(value, cst.Name):
            binding = semantics.lookup(value.value, site.scope, site.seq)
            value = binding.value if binding is not None and binding.value is not None else value
        if isinstance(value, cst.Call) and semantics.qualname(value.func) in SWITCHES:
            return True
    return False


def _evaluation_with_key(semantics: Semantics, function: cst.FunctionDef, scope: Scope,
                         param: cst.Param, depth: int = 0
                         ) -> Optional[tuple[CallSite, _TrainingDropout]]:
    """The first call in `function` that runs `param`'s model with a key (directly, through
    `jax.vmap`, or through one helper of the file), with the Dropout it reaches."""
    name = param.name.value
    for site in semantics.calls:
        if not site.scope.is_within(scope) or site.scope.kind == "lambda":
            continue
        binding = semantics.lookup(name, site.scope, site.seq)
        if binding is None or binding.parameter is not param:
            continue  # the name is rebound before this call
        model_node = _called_model(semantics, site)
        if isinstance(model_node, cst.Name) and model_node.value == name:
            dropout = _training_dropout_of(semantics, param, site)
            if dropout is not None and _passes_key(site.node, dropout):
                return site, dropout
            continue
        if depth > 0 or not isinstance(site.node.func, cst.Name):
            continue
        helper = semantics.function_named(site.node.func.value, site.scope, site.seq)
        if helper is None or helper is function:
            continue
        position = next((i for i, arg in enumerate(positional_args(site.node))
                         if isinstance(arg, cst.Name) and arg.value == name), None)
        helper_params = parameters_of(helper)
        helper_scope = semantics.scope_of_node.get(id(helper))
        if position is None or position >= len(helper_params) or helper_scope is None \
                or _switches_inside(semantics, helper_scope):
            continue
        inner = _evaluation_with_key(semantics, helper, helper_scope, helper_params[position],
                                     depth + 1)
        if inner is not None:
            return site, _training_dropout_of(semantics, param, site) or inner[1]
    return None


def _called_model(semantics: Semantics, site: CallSite) -> Optional[cst.BaseExpression]:
    func: cst.BaseExpression = site.node.func
    if isinstance(func, cst.Name):
        binding = semantics.lookup(func.value, site.scope, site.seq)
        if binding is not None and binding.parameter is None and binding.index is None \
                and isinstance(binding.value, cst.Call) \
                and semantics.qualname(binding.value.func) in _VMAPS:
            func = binding.value
    if isinstance(func, cst.Call) and semantics.qualname(func.func) in _VMAPS:
        return argument(func, 0, "fun")
    return func


def _model_class(semantics: Semantics, param: cst.Param, site: CallSite) -> Optional[Value]:
    """The model the parameter holds: as the file's callers show it, else its annotation."""
    value = semantics.infer(param.name, at=site)
    if value is None and param.annotation is not None:
        value = semantics.annotation_value(param.annotation.annotation)
    return value if value is not None and value.kind == "module" else None


def _training_dropout_of(semantics: Semantics, param: cst.Param, site: CallSite
                         ) -> Optional[_TrainingDropout]:
    value = _model_class(semantics, param, site)
    if value is None:
        return None
    ref = semantics.class_ref_of(value)
    if ref is None:
        return None
    owner, info = ref
    return _training_dropout(owner, info)


def _training_dropout(owner: Semantics, info: ClassInfo) -> Optional[_TrainingDropout]:
    """A Dropout field (rate not 0, `inference` not given) that `__call__` runs with a key
    taken from its own parameters, without an `inference=` argument."""
    call = info.methods.get("__call__")
    call_scope = owner.scope_of_node.get(id(call)) if call is not None else None
    if call is None or call_scope is None:
        return None
    params = parameters_of(call)[1:]
    for field, bindings in info.self_assignments.items():
        if not bindings or not all(_training_dropout_call(owner, b) for b in bindings):
            continue
        for site in owner.calls:
            func = site.node.func
            if not site.scope.is_within(call_scope) or not isinstance(func, cst.Attribute) \
                    or dotted_name(func) != f"self.{field}":
                continue
            if any(arg.keyword is not None and arg.keyword.value == "inference"
                   for arg in site.node.args):
                return None  # the class chooses the mode itself
            key = keyword_arg(site.node, "key")
            root = _key_parameter(owner, call_scope, key, site) if key is not None else None
            if root is None:
                continue
            position = next((i for i, p in enumerate(params) if p.name.value == root), None)
            return _TrainingDropout(info.name, field, position, root)
    return None


def _training_dropout_call(owner: Semantics, binding: Binding) -> bool:
    call = binding.value
    if not isinstance(call, cst.Call) or owner.qualname(call.func) != "equinox.nn.Dropout":
        return False
    inference = keyword_arg(call, "inference")
    if inference is not None and not (isinstance(inference, cst.Name)
                                      and inference.value == "False"):
        return False
    rate = argument(call, 0, "p")
    if rate is not None and not isinstance(rate, (cst.Float, cst.Integer)):
        return False  # a rate the code does not show may be 0
    return rate is None or float(rate.value) != 0.0


def _key_parameter(owner: Semantics, scope: Scope, key: cst.BaseExpression, site: CallSite
                   ) -> Optional[str]:
    """The `__call__` parameter a dropout's key comes from (directly or through a split)."""
    for _ in range(3):
        if isinstance(key, cst.Subscript):
            key = key.value
        if not isinstance(key, cst.Name):
            return None
        bindings = scope.bindings.get(key.value, [])
        if any(b.parameter is not None for b in bindings):
            return key.value
        binding = owner.lookup(key.value, scope, site.seq)
        if binding is None or not isinstance(binding.value, cst.Call) \
                or owner.qualname(binding.value.func) not in _KEY_SPLITS:
            return None
        parent = argument(binding.value, 0, "key")
        if parent is None:
            return None
        key = parent
    return None


def _passes_key(call: cst.Call, dropout: _TrainingDropout) -> bool:
    given = keyword_arg(call, dropout.key_name)
    position = dropout.key_position
    if given is None and position is not None:
        positional = positional_args(call)
        given = positional[position] if position < len(positional) else None
    return given is not None and not (isinstance(given, cst.Name) and given.value == "None")
