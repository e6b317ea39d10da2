"""EQX402: one module object stored in two places of a model, meant as tied weights."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Iterator, Optional

import libcst as cst

from eqxlint.knowledge import equinox_nn
from eqxlint.rules.base import Bad, Finding, Good, Rule
from eqxlint.rules.first_look import (FirstLook, ast_dotted_name, import_aliases, may_name,
                                      statement_blocks, walk)
from eqxlint.semantics import (LOCAL_PREFIX, Binding, ClassInfo, Semantics, Value, argument,
                               descendants, dotted_name)
from eqxlint.semantics.project import LIBRARIES

if TYPE_CHECKING:
    from eqxlint.diagnostics import Diagnostic
    from eqxlint.runtime.checker import RuntimeContext

HINT = ("Tie them with `eqx.nn.Shared((encoder, decoder), where, get)`; for independent "
        "layers, build each one with its own key")


class ModuleStoredTwice(Rule):
    code = "EQX402"
    name = "module-stored-twice"
    summary = "One module object stored in two fields or list items: two copies, not tied"
    triggers = ((b"equinox",), (b"self.", b"Sequential"), (b"=",))
    what_it_does = """
        Checks for one Equinox module that holds parameters stored twice in a model: the
        same name assigned to two fields in one block of a module's `__init__`
        (`self.encoder = layer` and `self.decoder = layer`), a field assigned from
        another (`self.decoder = self.encoder`), the same name twice in a list or tuple
        stored in a field or given to `eqx.nn.Sequential` (`[block, block]`), and a list
        of one layer repeated (`[eqx.nn.Linear(...)] * 3`).
    """
    why_bad = """
        A JAX pytree has no shared references: each place holds its own leaves. The
        gradient of each copy is computed separately, and after the first optimizer step
        the copies differ: the weights were never tied, they only started equal. (A
        repeated layer in a list is the same mistake: the layers start identical instead
        of independent.)
    """
    example = """
        class AutoEncoder(eqx.Module):
            encoder: eqx.nn.Linear
            decoder: eqx.nn.Linear

            def __init__(self, key):
                layer = eqx.nn.Linear(4, 4, key=key)
                self.encoder = layer
                self.decoder = layer
    """
    use_instead = """
        class AutoEncoder(eqx.Module):
            shared: eqx.nn.Shared

            def __init__(self, key):
                encoder_key, decoder_key = jax.random.split(key)
                encoder = eqx.nn.Linear(4, 4, key=encoder_key)
                decoder = eqx.nn.Linear(4, 4, key=decoder_key)
                where = lambda pair: pair[1].weight
                get = lambda pair: pair[0].weight
                self.shared = eqx.nn.Shared((encoder, decoder), where, get)
    """
    fix_safety = ("No automatic fix: `eqx.nn.Shared` changes how the model is called "
                  "(`encoder, decoder = self.shared()`).")
    runtime = """
        `check_model(model)` reports a module that holds arrays and is the same object at
        two pytree paths (`model.encoder` and `model.decoder`), outside `eqx.nn.Shared`.
        A model that went through `jax.jit` or `apply_updates` no longer shares the
        object, so check the freshly built model.
    """
    real_error = """
        None: training runs and the copies drift apart. Measured (jax 0.10.2, equinox
        0.13.8, optax 0.2.8): a module with `self.encoder = shared` and `self.decoder =
        shared` for one `eqx.nn.Linear(4, 4)` has `model.encoder is model.decoder` and 4
        leaves (two copies of weight and bias); after one `optax.sgd(0.1)` step the two
        weights are no longer equal (largest difference 0.42). The same for a list
        holding one layer twice. With `eqx.nn.Shared`, the weights are still equal after
        the step.
    """
    known_limits = """
        Only one block of straight-line code is compared (two assignments in different
        branches are not), and the stored name must be bound to a module the file
        shows: an `equinox.nn` layer that holds arrays (from the measured table), or a
        class of this file with a field that holds a layer or an array.
    """

    bad_examples = (
        Bad("""
            import equinox as eqx

            class AutoEncoder(eqx.Module):
                encoder: eqx.nn.Linear
                decoder: eqx.nn.Linear

                def __init__(self, key):
                    layer = eqx.nn.Linear(4, 4, key=key)
                    self.encoder = layer
                    self.decoder = layer  # expect: EQX402
        """, "the headline case"),
        Bad("""
            import equinox as eqx

            class LanguageModel(eqx.Module):
                embedding: eqx.nn.Embedding
                unembed: eqx.nn.Embedding

                def __init__(self, vocab, dim, *, key):
                    self.embedding = eqx.nn.Embedding(vocab, dim, key=key)
                    self.unembed = self.embedding  # expect: EQX402
        """, "a field assigned from another to tie embeddings"),
        Bad("""
            import equinox as eqx

            class Siamese(eqx.Module):
                towers: list

                def __init__(self, key):
                    tower = eqx.nn.Conv2d(3, 8, 3, key=key)
                    self.towers = [tower, tower]  # expect: EQX402
        """, "a list holding one layer twice"),
        Bad("""
            import equinox as eqx

            def build(key):
                block = eqx.nn.Linear(16, 16, key=key)
                return eqx.nn.Sequential([block, eqx.nn.Lambda(jax.nn.relu), block])  # expect: EQX402
        """, "eqx.nn.Sequential given one layer twice"),
        Bad("""
            import equinox as eqx

            class Deep(eqx.Module):
                layers: list

                def __init__(self, width, key):
                    self.layers = [eqx.nn.Linear(width, width, key=key)] * 4  # expect: EQX402
        """, "a list of one layer repeated"),
        Bad("""
            import equinox as eqx

            class Block(eqx.Module):
                linear: eqx.nn.Linear

                def __init__(self, key):
                    self.linear = eqx.nn.Linear(8, 8, key=key)

            class Tied(eqx.Module):
                first: Block
                second: Block

                def __init__(self, key):
                    block = Block(key)
                    self.first = block
                    self.second = block  # expect: EQX402
        """, "a module class of this file"),
        Bad("""
            from equinox import Module
            from equinox.nn import Linear

            class Mirror(Module):
                up: Linear
                down: Linear

                def __init__(self, key):
                    shared = Linear(3, 3, key=key)
                    self.up, self.down = shared, shared  # expect: EQX402
        """, "from-imports, one tuple assignment"),
        Bad("""
            import equinox as eqx

            type Pair[T] = tuple[T, T]

            class Tied[T](eqx.Module):
                first: eqx.nn.Linear
                second: eqx.nn.Linear

                def __init__[K](self, key: K):
                    layer = eqx.nn.Linear(4, 4, key=key)
                    self.first = layer
                    self.second = layer  # expect: EQX402
        """, "Python 3.12 type parameters (the first look reads the file without them)"),
        Bad("""
            import equinox as E
            from equinox.nn import Linear, Sequential as Chain

            class Base(E.Module):
                pass

            class Tied(Base):
                up: Linear
                down: Linear

                def __init__(self, key):
                    layer = Linear(3, 3, key=key)
                    self.up = layer
                    self.down = layer  # expect: EQX402

            def build(key):
                block = Linear(3, 3, key=key)
                return Chain([block, block])  # expect: EQX402
        """, "a subclass of a module class of the file, aliases (the first look's boundary)"),
    )
    good_examples = (
        Good("""
            import equinox as eqx

            class LanguageModel(eqx.Module):
                shared: eqx.nn.Shared

                def __init__(self, *, key):
                    embedding = eqx.nn.Embedding(3, 4, key=key)
                    linear = eqx.nn.Linear(4, 3, key=key)
                    where = lambda pair: pair[1].weight
                    get = lambda pair: pair[0].weight
                    self.shared = eqx.nn.Shared((embedding, linear), where, get)
        """, "eqx.nn.Shared: tied for real"),
        Good("""
            import equinox as eqx

            class AutoEncoder(eqx.Module):
                encoder: eqx.nn.Linear
                decoder: eqx.nn.Linear

                def __init__(self, key):
                    k1, k2 = jax.random.split(key)
                    layer = eqx.nn.Linear(4, 4, key=k1)
                    self.encoder = layer
                    layer = eqx.nn.Linear(4, 4, key=k2)
                    self.decoder = layer
        """, "the name is rebound to a new layer between"),
        Good("""
            import equinox as eqx

            class Net(eqx.Module):
                layers: list

                def __init__(self, key):
                    act = eqx.nn.Lambda(jax.nn.relu)
                    self.layers = [eqx.nn.Linear(2, 8, key=key), act, eqx.nn.Linear(8, 2, key=key), act]
        """, "a layer without arrays repeated: nothing to tie"),
        Good("""
            import equinox as eqx

            class Net(eqx.Module):
                layers: list

                def __init__(self, keys):
                    self.layers = [eqx.nn.Linear(4, 4, key=k) for k in keys]
        """, "a new layer per key"),
        Good("""
            import equinox as eqx

            class Wrapper(eqx.Module):
                inner: eqx.nn.Linear

                def __init__(self, inner):
                    self.inner = inner

            def build(key):
                layer = eqx.nn.Linear(4, 4, key=key)
                return Wrapper(layer)
        """, "stored once"),
        Good("""
            import equinox as eqx

            class Net(eqx.Module):
                encoder: eqx.nn.Linear
                decoder: eqx.nn.Linear

                def __init__(self, key, tie):
                    self.encoder = eqx.nn.Linear(4, 4, key=key)
                    if tie:
                        self.decoder = eqx.nn.Linear(4, 4, key=key)
                    else:
                        self.decoder = eqx.nn.Linear(4, 4, key=key)
        """, "two new layers in branches"),
        Good("""
            import equinox as eqx

            class Trainer:
                def __init__(self, model):
                    self.model = model
                    self.best_model = model
        """, "not an Equinox module: a plain class keeps references"),
        Good("""
            import equinox as eqx

            class Net(eqx.Module):
                blocks: tuple

                def __init__(self, key):
                    keys = jax.random.split(key, 3)
                    self.blocks = tuple(eqx.nn.Linear(8, 8, key=k) for k in keys)
        """, "a tuple of independent layers"),
        Good("""
            import equinox as eqx

            def build(key):
                layer = eqx.nn.Linear(4, 4, key=key)
                first = eqx.nn.Sequential([layer])
                return first
        """, "one layer in a Sequential"),
        Good("""
            import equinox as eqx

            class Net(eqx.Module):
                pools: list

                def __init__(self):
                    pool = eqx.nn.MaxPool2d(2)
                    self.pools = [pool, pool]
        """, "a pool holds no parameters"),
    )

    @classmethod
    def may_fire(cls, source: bytes, look: Optional[FirstLook] = None) -> bool:
        """A first look at Python's `ast` for each shape the check reports: in one block
        of a method, one name stored in two fields or a field assigned from a field; a
        field given a list that repeats a name or multiplies a one-item list; and (when
        `Sequential` occurs at all) a call that may resolve to it (spelled `Sequential`
        or a name imported as it) given such a list first. Only classes of the module's
        scope whose bases may resolve to `equinox.Module`, an `equinox.nn` class, a class
        of a project module or such a class of the file are read. Sound: the check looks
        at nothing else, and only in methods of those classes. A file in newer syntax
        than this Python's `ast` reads (`class Net[T](eqx.Module)`) is read without its
        type parameter lists, which hold none of these shapes."""
        if not super().may_fire(source, look):
            return False
        tree = (look or FirstLook(source)).tree(newer_syntax=True)
        if tree is None:
            return True
        for node in _equinox_classes(tree):
            if any(_may_store_twice(block) for method in node.body
                   if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef))
                   for block in statement_blocks(method)):
                return True
        if b"Sequential" in source:
            aliases = import_aliases(tree, "Sequential")
            for node in walk(tree):
                if isinstance(node, ast.Call) and may_name(node.func, _SEQUENTIAL, aliases):
                    given = node.args[:1] + [k.value for k in node.keywords if k.arg == "layers"]
                    if any(_may_repeat(value) for value in given):
                        return True
        return False

    def check(self, semantics: Semantics) -> Iterator[Finding]:
        for info in semantics.classes.values():
            if not semantics.is_equinox_module_class(LOCAL_PREFIX + info.name):
                continue
            yield from _stored_twice_in_class(semantics, info)
        for site in semantics.calls_to("equinox.nn.Sequential"):
            layers = argument(site.node, 0, "layers")
            if layers is not None:
                found = _repeated_in_literal(semantics, layers, site.scope, site.seq)
                if found is not None:
                    node, what = found
                    yield _finding(node, f"`eqx.nn.Sequential` is given {what}")

    def check_runtime(self, context: "RuntimeContext") -> Iterator["Diagnostic"]:
        import equinox as eqx

        from eqxlint.runtime.tree import is_array_like

        first_seen: dict[int, str] = {}
        reported: list[str] = []
        shared_paths: list[str] = []
        for path, module in context.modules:
            if isinstance(module, eqx.nn.Shared):
                shared_paths.append(path)
            if any(path.startswith(prefix) for prefix in reported + shared_paths
                   if path != prefix):
                continue
            earlier = first_seen.setdefault(id(module), path)
            if earlier == path:
                continue
            leaves = [leaf for leaf in _leaves(module) if is_array_like(leaf)]
            if not leaves:
                continue
            reported.append(path)
            yield context.diagnostic(
                self, path,
                f"is the same `{type(module).__name__}` object as `{earlier}`: the pytree holds "
                f"two copies, which differ after the first optimizer step", HINT)


def _leaves(module: object) -> list[object]:
    import jax

    return jax.tree_util.tree_leaves(module)


_SEQUENTIAL = frozenset({"Sequential"})


def _equinox_classes(tree: ast.Module) -> list[ast.ClassDef]:
    """The classes of the module's scope (the semantics knows no other) that may subclass
    `eqx.Module`: a base that may resolve (through the file's imports) to `equinox.Module`
    or a class of `equinox.nn`, to a class of a project module, or to such a class of the
    file."""
    classes: list[ast.ClassDef] = []
    pending: list[ast.AST] = [tree]
    while pending:  # module-level statements, through if/for/while/with/try/match
        current = pending.pop()
        for value in vars(current).values():
            if not isinstance(value, list):
                continue
            for item in value:
                if isinstance(item, ast.ClassDef):
                    classes.append(item)
                elif isinstance(item, (ast.stmt, ast.excepthandler, ast.match_case)) \
                        and not isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    pending.append(item)
    quals: dict[str, set[str]] = {}
    for block in statement_blocks(tree):
        for statement in block:
            if isinstance(statement, ast.Import):
                for alias in statement.names:
                    local = alias.asname or alias.name.split(".", 1)[0]
                    quals.setdefault(local, set()).add(alias.name if alias.asname else local)
            elif isinstance(statement, ast.ImportFrom) and statement.module is not None \
                    and all(alias.name != "*" for alias in statement.names):
                module = "." * (statement.level or 0) + statement.module
                for alias in statement.names:
                    quals.setdefault(alias.asname or alias.name, set()).add(
                        f"{module}.{alias.name}")

    def may_be_module(qual: str) -> bool:
        return qual == "equinox.Module" or qual.startswith("equinox.nn.") \
            or qual.startswith(".") or qual.split(".", 1)[0] not in LIBRARIES

    possible: set[str] = set()
    found: list[ast.ClassDef] = []
    changed = True
    while changed:
        changed = False
        for node in classes:
            if id(node) in possible:
                continue
            for base in node.bases:
                dotted = ast_dotted_name(base.value if isinstance(base, ast.Starred) else base)
                if dotted is None:
                    continue
                head, _, rest = dotted.partition(".")
                if head in quals:
                    hit = any(may_be_module(f"{q}.{rest}" if rest else q) for q in quals[head])
                else:
                    hit = not rest and any(c.name == head and id(c) in possible for c in classes)
                if hit:
                    possible.add(id(node))
                    found.append(node)
                    changed = True
                    break
    return found


def _may_store_twice(block: list[ast.stmt]) -> bool:
    """The first look's view of _stored_twice_in_block: could a finding be in here?"""
    fields_of_name: dict[str, set[str]] = {}
    for statement in block:
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1:
            continue
        target, value = statement.targets[0], statement.value
        pairs = list(zip(target.elts, value.elts)) if isinstance(target, (ast.Tuple, ast.List)) \
            and isinstance(value, (ast.Tuple, ast.List)) and len(target.elts) == len(value.elts) \
            else [(target, value)]
        for one_target, one_value in pairs:
            field = _ast_self_field(one_target)
            if field is None:
                continue
            if isinstance(one_value, ast.Name):
                fields = fields_of_name.setdefault(one_value.id, set())
                fields.add(field)
                if len(fields) > 1:
                    return True
            elif _ast_self_field(one_value) is not None or _may_repeat(one_value):
                return True
    return False


def _ast_self_field(node: ast.AST) -> Optional[str]:
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
            and node.value.id == "self":
        return node.attr
    return None


def _may_repeat(value: ast.AST) -> bool:
    """`[layer] * n`, `n * (layer,)` or a list or tuple naming one name twice."""
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Mult):
        return any(isinstance(side, (ast.List, ast.Tuple)) and len(side.elts) == 1
                   for side in (value.left, value.right))
    if isinstance(value, (ast.List, ast.Tuple)):
        names = [element.id for element in value.elts if isinstance(element, ast.Name)]
        return len(names) != len(set(names))
    return False


def _finding(node: cst.CSTNode, what: str) -> Finding:
    return Finding(node=node,
                   message=f"{what}: the pytree holds two copies, not one shared layer, and "
                           f"after the first optimizer step they differ",
                   hint=HINT)


def _stored_twice_in_class(semantics: Semantics, info: ClassInfo) -> Iterator[Finding]:
    by_target: dict[int, Binding] = {}
    for bindings in info.self_assignments.values():
        for binding in bindings:
            by_target[id(binding.target)] = binding
    for method in info.node.body.body:
        if not isinstance(method, cst.FunctionDef):
            continue
        blocks = [method.body] + [b for b in descendants(method.body, cst.IndentedBlock)
                                  if b is not method.body]
        for block in blocks:
            yield from _stored_twice_in_block(semantics, block, by_target)


def _stored_twice_in_block(semantics: Semantics, block: cst.BaseSuite,
                           by_target: dict[int, Binding]) -> Iterator[Finding]:
    """Self-assignments of one block, in order: the same module stored in two fields."""
    stored: dict[int, str] = {}  # binding of the stored name -> the field holding it
    fields_holding_modules: set[str] = set()
    body = getattr(block, "body", ())
    for line in body if isinstance(body, (list, tuple)) else ():
        if not isinstance(line, cst.SimpleStatementLine):
            continue
        for statement in line.body:
            if not isinstance(statement, cst.Assign) or len(statement.targets) != 1:
                continue
            for target, value in _pairs(statement.targets[0].target, statement.value):
                field = _self_field(target)
                binding = by_target.get(id(target))
                if field is None or binding is None:
                    continue
                scope = semantics.scope_of_node.get(id(target), semantics.module_scope)
                seq = binding.seq
                if isinstance(value, cst.Name):
                    module_binding = semantics.lookup(value.value, scope, seq)
                    module = semantics.infer(value, scope=scope, seq=seq)
                    if module_binding is None or not _holds_parameters(semantics, module):
                        continue
                    earlier = stored.get(id(module_binding))
                    if earlier is not None and earlier != field:
                        yield _finding(value, f"`{value.value}` is stored in `self.{earlier}` "
                                              f"and in `self.{field}`")
                    stored.setdefault(id(module_binding), field)
                    fields_holding_modules.add(field)
                elif _self_field(value) is not None:
                    source = _self_field(value)
                    module = semantics.infer(value, scope=scope, seq=seq)
                    if source in fields_holding_modules or _holds_parameters(semantics, module):
                        yield _finding(value, f"`self.{field}` is assigned `self.{source}`, "
                                              f"the same module object")
                else:
                    if _holds_parameters(semantics, semantics.infer(value, scope=scope, seq=seq)):
                        fields_holding_modules.add(field)
                    found = _repeated_in_literal(semantics, value, scope, seq)
                    if found is not None:
                        node, what = found
                        yield _finding(node, f"`self.{field}` holds {what}")


def _pairs(target: cst.BaseExpression, value: cst.BaseExpression
           ) -> list[tuple[cst.BaseExpression, cst.BaseExpression]]:
    """`a, b = x, y` -> [(a, x), (b, y)]; `a = x` -> [(a, x)]."""
    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)) \
            and len(target.elements) == len(value.elements):
        return [(t.value, v.value) for t, v in zip(target.elements, value.elements)]
    return [(target, value)]


def _self_field(node: cst.BaseExpression) -> Optional[str]:
    dotted = dotted_name(node)
    if dotted is not None and dotted.startswith("self.") and dotted.count(".") == 1:
        return dotted[5:]
    return None


def _repeated_in_literal(semantics: Semantics, value: cst.BaseExpression, scope: object,
                         seq: int) -> Optional[tuple[cst.CSTNode, str]]:
    """(node, what) for `[layer, layer]` or `[eqx.nn.Linear(...)] * n` holding parameters."""
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply):
        listed, count = value.left, value.right
        if isinstance(listed, cst.Integer):
            listed, count = count, listed
        if isinstance(listed, (cst.List, cst.Tuple)) and len(listed.elements) == 1 \
                and not (isinstance(count, cst.Integer) and int(count.value, 0) < 2):
            element = listed.elements[0].value
            module = semantics.infer(element, scope=scope, seq=seq)  # type: ignore[arg-type]
            if _holds_parameters(semantics, module):
                return value, f"one `{_class_name(module)}` repeated: every item is the same layer"
        return None
    if not isinstance(value, (cst.List, cst.Tuple)):
        return None
    seen: dict[int, str] = {}
    for element in value.elements:
        item = element.value
        if not isinstance(item, cst.Name):
            continue
        binding = semantics.lookup(item.value, scope, seq)  # type: ignore[arg-type]
        if binding is None:
            continue
        if id(binding) in seen:
            module = semantics.infer(item, scope=scope, seq=seq)  # type: ignore[arg-type]
            if _holds_parameters(semantics, module):
                return item, f"`{item.value}` twice in one list"
        seen[id(binding)] = item.value
    return None


def _class_name(value: Optional[Value]) -> str:
    if value is None or value.cls is None:
        return "module"
    return value.cls.rsplit(".", 1)[-1]


def _holds_parameters(semantics: Semantics, value: Optional[Value],
                      _seen: Optional[set[str]] = None) -> bool:
    """The module provably holds an inexact array: a layer of `equinox.nn` that does (from
    the measured table), or a class of this file with a field holding such a layer or an
    array."""
    if value is None or value.kind != "module" or value.cls is None:
        return False
    cls = value.cls
    if cls.startswith("equinox.nn."):
        return _nn_layer_holds_parameters(cls[len("equinox.nn."):])
    if not cls.startswith(LOCAL_PREFIX):
        return False
    seen = set() if _seen is None else _seen
    if cls in seen:
        return False
    seen.add(cls)
    info = semantics.classes.get(cls[len(LOCAL_PREFIX):])
    if info is None:
        return False
    for field_info in info.fields.values():
        if field_info.static or field_info.annotation is None:
            continue
        annotation = field_info.annotation
        base = annotation.value if isinstance(annotation, cst.Subscript) else annotation
        qual = semantics.qualname(base) or dotted_name(base) or ""
        if qual in ("jax.Array", "jax.numpy.ndarray", "Array") or qual.startswith("jaxtyping."):
            return True
        if qual.startswith(("equinox.nn.", LOCAL_PREFIX)) and \
                _holds_parameters(semantics, Value("module", None, cls=qual), seen):
            return True
    return False


def _nn_layer_holds_parameters(name: str) -> bool:
    kinds: Optional[dict[str, dict[str, str]]] = getattr(equinox_nn, "FIELD_KINDS", None)
    if kinds is not None and name in kinds:
        return any(kind in ("inexact_array", "module", "modules") for kind in kinds[name].values())
    # Before the field table: layers measured to hold arrays and nothing else.
    return name in equinox_nn.ARRAYS_ONLY
