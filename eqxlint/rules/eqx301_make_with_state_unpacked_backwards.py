"""EQX301: `state, model = eqx.nn.make_with_state(Net)(...)`: it returns (model, state)."""

from __future__ import annotations

import ast
from typing import Iterator, Optional

import libcst as cst

from eqxlint.rules.base import Bad, Finding, FixCase, Good, Rule
from eqxlint.rules.first_look import (FirstLook, ast_dotted_name, import_aliases, may_name,
                                      statement_blocks, walk)
from eqxlint.semantics import CallSite, Scope, Semantics, dotted_name

_TUPLE_METHODS = {"count", "index"}
_MAKE_WITH_STATE = frozenset({"make_with_state"})


class MakeWithStateUnpackedBackwards(Rule):
    code = "EQX301"
    name = "make-with-state-unpacked-backwards"
    summary = "`eqx.nn.make_with_state(...)(...)` returns `(model, state)`, unpacked the other way"
    fix_applicability = "safe"
    triggers = ((b"make_with_state",),)
    what_it_does = """
        Checks the targets of `eqx.nn.make_with_state(Net)(...)`, which returns the pair
        `(model, state)`:
        - `state, model = ...`: the first target is named as the state (`state`,
          `*_state`, `st`) and the second is not, or the second target is later called with
          the first as an argument (`model(x, state)`);
        - `model = ...` with the result later called or used as a module (`model(x)`,
          `model.layers`): it is a tuple.
    """
    why_bad = """
        The names now hold each other's values. The failure (below) comes at the first
        call of the "model", far from the cause.

        Flagging by a target's name is right here: the code says which value each
        position holds (`make_with_state` always returns `(model, state)`), and the name
        says what the author believes it holds; the rule reports the contradiction. When
        the uses agree with the values (`state(x, model)`), it stays quiet.
    """
    example = """
        state, model = eqx.nn.make_with_state(Net)(key)
        y, state = model(x, state)
    """
    use_instead = """
        model, state = eqx.nn.make_with_state(Net)(key)
        y, state = model(x, state)
    """
    fix_safety = """
        Safe for the swapped pair: the fix swaps the two targets, so each name holds what
        it is used as. No fix for a single target (`model = ...`): the message shows the
        line to write, and the state needs a name of your choosing.
    """
    runtime = "None: this rule is static only (EQX302 checks a model's state at runtime)."
    real_error = "TypeError: Expected a callable value, got State(...)"
    known_limits = """
        A single target is reported only when it is called, or an attribute other than
        `count`/`index` is read from it, in the same function before it is rebound.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx

            state, model = eqx.nn.make_with_state(Net)(key)  # expect: EQX301
        """, "the headline case"),
        Bad("""
            import equinox

            def build(key):
                bn_state, net = equinox.nn.make_with_state(Net)(3, key=key)  # expect: EQX301
                return net, bn_state
        """, "*_state name, module import without alias"),
        Bad("""
            from equinox.nn import make_with_state

            a, b = make_with_state(Net)(key)  # expect: EQX301
            y, a = b(x, a)
        """, "names say nothing, the use says which is the model"),
        Bad("""
            import equinox as eqx

            class Trainer:
                def __init__(self, key):
                    self.state, self.model = eqx.nn.make_with_state(Net)(key)  # expect: EQX301
        """, "attributes of self"),
        Bad("""
            import equinox as eqx

            model = eqx.nn.make_with_state(Net)(key)  # expect: EQX301
            y = model(x)
        """, "the tuple called as a model"),
        Bad("""
            import equinox as eqx

            def main(key):
                model = eqx.nn.make_with_state(eqx.nn.BatchNorm)(  # expect: EQX301
                    input_size=3, axis_name="batch"
                )
                print(model.weight)
        """, "the tuple used for an attribute"),
        Bad("""
            import equinox as eqx

            st, _ = eqx.nn.make_with_state(Net)(key)  # expect: EQX301
        """, "the model kept under the state's name"),
        Bad("""
            from equinox.nn import make_with_state as build

            def main(key):
                st, net = build(Net)(key)  # expect: EQX301
                return net, st
        """, "an alias of the import (the first look's boundary)"),
    )
    good_examples = (
        Good("""
            import equinox as eqx

            model, state = eqx.nn.make_with_state(Net)(key)
        """, "the right order"),
        Good("""
            import equinox as eqx

            net, bn_state = eqx.nn.make_with_state(Net)(key)
            y, bn_state = net(x, bn_state)
        """, "other names, right order"),
        Good("""
            import equinox as eqx

            pair = eqx.nn.make_with_state(Net)(key)
            model, state = pair
        """, "a tuple kept as a tuple"),
        Good("""
            import equinox as eqx

            model_and_state = eqx.nn.make_with_state(Net)(key)
            model = model_and_state[0]
        """, "indexed, not called"),
        Good("""
            import equinox as eqx

            state, model = make_with_state(Net)(key)
        """, "not equinox's make_with_state (no import)"),
        Good("""
            import equinox as eqx

            _, state = eqx.nn.make_with_state(Net)(key)
        """, "only the state is kept"),
        Good("""
            import equinox as eqx

            state, model = eqx.nn.make_with_state(Net)(key)
            y, model = state(x, model)
        """, "odd names, but used as the values they hold"),
        Good("""
            import equinox as eqx

            model = eqx.nn.make_with_state(Net)(key)
            model, state = model
            y = model(x, state)
        """, "rebound before the call"),
        Good("""
            import equinox as eqx

            result = eqx.nn.make_with_state(Net)(key)
            n = result.count(None)
        """, "a tuple method"),
    )
    fix_examples = (
        FixCase("""
            import equinox as eqx

            state, model = eqx.nn.make_with_state(Net)(key)
        """, """
            import equinox as eqx

            model, state = eqx.nn.make_with_state(Net)(key)
        """),
        FixCase("""
            import equinox as eqx

            (bn_state,  net) = eqx.nn.make_with_state(Net)(key)  # comment
        """, """
            import equinox as eqx

            (net,  bn_state) = eqx.nn.make_with_state(Net)(key)  # comment
        """),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """`make_with_state` must occur (the trigger); then, on Python's `ast`, an assignment
        statement with one target must take `<f>(...)(...)`, where `<f>` is a dotted name
        ending in `make_with_state` or a name imported as `make_with_state as <f>` (how the
        semantics can resolve it to equinox's), and its target must be what the check
        reports on: a pair of dotted names whose first looks like the state and the second
        not, or whose second is called somewhere with the first as an argument; or one name
        called somewhere, or with an attribute (not `count`/`index`) read from it. Sound:
        each test is a superset of the check's (anywhere in the file, not only after the
        assignment in its scope)."""
        if not super().may_fire(source, look):
            return False
        tree = (look or FirstLook(source)).tree(newer_syntax=True)
        if tree is None:
            return True
        aliases = import_aliases(tree, "make_with_state")
        assignments = [statement for block in statement_blocks(tree) for statement in block
                       if isinstance(statement, ast.Assign) and len(statement.targets) == 1
                       and isinstance(statement.value, ast.Call)
                       and isinstance(statement.value.func, ast.Call)
                       and may_name(statement.value.func.func, _MAKE_WITH_STATE, aliases)]
        calls: Optional[list[ast.Call]] = None
        for statement in assignments:
            target = statement.targets[0]
            if isinstance(target, (ast.Tuple, ast.List)) and len(target.elts) == 2:
                first, second = (ast_dotted_name(element) for element in target.elts)
                if first is None or second is None:
                    continue
                if _is_state_name(first) and not _is_state_name(second):
                    return True
                if calls is None:
                    calls = [node for node in walk(tree) if isinstance(node, ast.Call)]
                if any(ast_dotted_name(call.func) == second and first in _argument_names(call)
                       for call in calls):
                    return True
            elif isinstance(target, ast.Name):
                name = target.id
                for node in walk(tree):
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                            and node.func.id == name:
                        return True
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                            and node.value.id == name and node.attr not in _TUPLE_METHODS:
                        return True
        return False

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for site in semantics.calls:
            func = site.node.func
            if not isinstance(func, cst.Call) or \
                    semantics.qualname(func.func) != "equinox.nn.make_with_state":
                continue
            assign = site.parent
            if not isinstance(assign, cst.Assign) or len(assign.targets) != 1:
                continue
            target = assign.targets[0].target
            call_text = _call_text(semantics, site.node)
            if isinstance(target, (cst.Tuple, cst.List)) and len(target.elements) == 2:
                finding = _check_pair(semantics, site, target, call_text)
            elif isinstance(target, cst.Name):
                finding = _check_single(semantics, site, target, call_text)
            else:
                finding = None
            if finding is not None:
                yield finding


def _argument_names(call: ast.Call) -> set[Optional[str]]:
    """The dotted names given to a call, as libcst's `arg.value` shows them (`*x` too)."""
    values = [arg.value if isinstance(arg, ast.Starred) else arg for arg in call.args]
    values += [keyword.value for keyword in call.keywords]
    return {ast_dotted_name(value) for value in values}


def _call_text(semantics: Semantics, call: cst.Call) -> str:
    text = semantics.module.code_for_node(call)
    return text if len(text) <= 60 and "\n" not in text else \
        semantics.module.code_for_node(call.func) + "(...)"


def _is_state_name(name: Optional[str]) -> bool:
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1].lower()
    return last in ("state", "st", "states") or last.endswith("_state") or last.startswith("state_")


def _called_with(semantics: Semantics, scope: Scope, after: int, callee: str, argument: str) -> bool:
    for site in semantics.calls:
        if site.seq > after and site.scope.is_within(scope) \
                and dotted_name(site.node.func) == callee \
                and any(dotted_name(arg.value) == argument for arg in site.node.args):
            return True
    return False


def _check_pair(semantics: Semantics, site: CallSite, target: cst.Tuple | cst.List,
                call_text: str) -> Optional[Finding]:
    first_node, second_node = (element.value for element in target.elements)
    if any(isinstance(e, cst.StarredElement) for e in target.elements):
        return None
    first, second = dotted_name(first_node), dotted_name(second_node)
    if first is None or second is None:
        return None
    backwards_by_use = _called_with(semantics, site.scope, site.seq, second, first)
    forwards_by_use = _called_with(semantics, site.scope, site.seq, first, second)
    backwards_by_name = _is_state_name(first) and not _is_state_name(second)
    if forwards_by_use or not (backwards_by_use or backwards_by_name):
        return None
    e0, e1 = target.elements
    swapped = target.with_changes(elements=[e0.with_changes(value=e1.value),
                                            e1.with_changes(value=e0.value)])
    return Finding(
        node=target,
        message=(f"`{call_text}` returns `(model, state)`, but it is unpacked as "
                 f"`{first}, {second}`: `{first}` gets the model and `{second}` the state"),
        hint=f"Swap the targets: `{second}, {first} = {call_text}`",
        replacements=((target, swapped),),
        fix_message=f"Swap the targets to `{second}, {first}`",
        anchor=site.node,
    )


def _check_single(semantics: Semantics, site: CallSite, target: cst.Name,
                  call_text: str) -> Optional[Finding]:
    name = target.value
    binding_seq = None
    for binding in site.scope.bindings.get(name, []):
        if binding.target is target:
            binding_seq = binding.seq
    if binding_seq is None:
        return None
    used_as_module = False
    for use in _uses_as_module(site.scope, name):
        use_site_seq = semantics.seq_of_call(use) if isinstance(use, cst.Call) else None
        if use_site_seq is not None:
            binding = semantics.lookup(name, semantics.scope_of_call(use), use_site_seq)
            if binding is not None and binding.target is target:
                used_as_module = True
                break
    if not used_as_module:
        return None
    return Finding(
        node=site.node,
        message=(f"`{name}` is the `(model, state)` tuple that `{call_text}` returns, "
                 f"and it is used as a module"),
        hint=f"Unpack it: `{name}, state = {call_text}`",
    )


def _uses_as_module(scope: Scope, name: str) -> list[cst.Call]:
    """Calls of `name(...)` and calls containing `name.attr` (to place them), in `scope`."""
    found: list[cst.Call] = []

    class _Uses(cst.CSTVisitor):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[cst.Call] = []

        def visit_Call(self, node: cst.Call) -> None:
            self.calls.append(node)
            if isinstance(node.func, cst.Name) and node.func.value == name:
                found.append(node)

        def leave_Call(self, original_node: cst.Call) -> None:
            self.calls.pop()

        def visit_Attribute(self, node: cst.Attribute) -> None:
            if isinstance(node.value, cst.Name) and node.value.value == name \
                    and node.attr.value not in _TUPLE_METHODS and self.calls:
                found.append(self.calls[-1])

    scope.node.visit(_Uses())
    return found
