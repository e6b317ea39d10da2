"""How long `eqxlint server` takes from `didChange` to `publishDiagnostics`.

    python benchmarks/lsp_latency.py                  # 50 edits of a 1,000-line training file
    python benchmarks/lsp_latency.py --memory 10000   # also: RSS growth over 10,000 edits

The server runs as an editor starts it (`python -m eqxlint server`, stdio) and a real
LSP client (pygls's) sends one incremental edit at a time, waiting for the diagnostics
of that version. Beside it, in the same run and interleaved with the edits, this process
times a bare `libcst.parse_module` of the same text (the floor any libcst linter pays)
and the linter itself (`lint_source`), so the server's own overhead shows.
Target: median latency <= 1.3 x the median bare parse.

The memory session sends edits one after another (each waited for), and reads the
server's resident set size from /proc (Linux) after a warm-up and at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional

import libcst
from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from eqxlint.linter import Settings, lint_source
from eqxlint.rules import all_codes

REPO = Path(__file__).resolve().parent.parent
BLOCK = '''

class Regressor{n}(eqx.Module):
    encoder: eqx.nn.MLP
    norm: eqx.nn.BatchNorm
    head: eqx.nn.Linear

    def __init__(self, key: jax.Array) -> None:
        encoder_key, head_key = jax.random.split(key)
        self.encoder = eqx.nn.MLP(1, 16, width_size=32, depth=1, activation=jax.nn.tanh,
                                  key=encoder_key)
        self.norm = eqx.nn.BatchNorm(16, axis_name="batch", mode="batch")
        self.head = eqx.nn.Linear(16, 1, key=head_key)

    def __call__(self, x: jax.Array, state: eqx.nn.State) -> tuple[jax.Array, eqx.nn.State]:
        hidden, state = self.norm(self.encoder(x), state)
        return self.head(hidden), state


def loss_fn{n}(model, state, x, y):
    batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    pred, state = batched(x, state)
    return jnp.mean((pred - y) ** 2), state


@eqx.filter_jit
def train_step{n}(model, state, opt_state, x, y):
    (loss, state), grads = eqx.filter_value_and_grad(loss_fn{n}, has_aux=True)(
        model, state, x, y)
    updates, opt_state = optim{n}.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    model = eqx.apply_updates(model, updates)
    return model, state, opt_state, loss


model{n}, state{n} = eqx.nn.make_with_state(Regressor{n})(jax.random.PRNGKey({n}))
optim{n} = optax.adam(1e-2)
opt_state{n} = optim{n}.init(eqx.filter(model{n}, eqx.is_inexact_array))
'''
HEADER = "import equinox as eqx\nimport jax\nimport jax.numpy as jnp\nimport optax\n"
HEADER_NP = "import numpy as np\n"
EDITED_LINE = "lr = 0.001  # edited\n"


HELPERS = '''

class Block{n}(eqx.Module):
    """A residual MLP block with layer norm."""

    norm: eqx.nn.LayerNorm
    up: eqx.nn.Linear
    down: eqx.nn.Linear
    dropout: eqx.nn.Dropout

    def __init__(self, width: int, key: jax.Array) -> None:
        up_key, down_key = jax.random.split(key)
        self.norm = eqx.nn.LayerNorm(width)
        self.up = eqx.nn.Linear(width, 4 * width, key=up_key)
        self.down = eqx.nn.Linear(4 * width, width, key=down_key)
        self.dropout = eqx.nn.Dropout(0.1)

    def __call__(self, x: jax.Array, *, key: jax.Array | None = None) -> jax.Array:
        hidden = jax.nn.gelu(self.up(self.norm(x)))
        return x + self.dropout(self.down(hidden), key=key)


def batches{n}(data: np.ndarray, batch_size: int, seed: int):
    """Shuffled minibatches, forever."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(data))
        for start in range(0, len(data) - batch_size + 1, batch_size):
            yield data[order[start:start + batch_size]]


def accuracy{n}(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def cross_entropy{n}(logits: jax.Array, labels: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def evaluate{n}(model, batches, steps: int) -> dict[str, float]:
    model = eqx.nn.inference_mode(model)
    totals = {{"loss": 0.0, "accuracy": 0.0}}
    for _, (x, y) in zip(range(steps), batches):
        logits = jax.vmap(model)(x)
        totals["loss"] += float(cross_entropy{n}(logits, y))
        totals["accuracy"] += float(accuracy{n}(logits, y))
    return {{name: value / steps for name, value in totals.items()}}


def save{n}(path: str, model, opt_state, step: int) -> None:
    with open(path, "wb") as stream:
        eqx.tree_serialise_leaves(stream, (model, opt_state))
    print(f"step {{step}}: saved {{path}}")
'''
MAIN = '''

def main() -> None:
    key = jax.random.PRNGKey(0)
    model = Block0(64, key)
    optim = optax.adamw(lr)
    opt_state = optim.init(model)
    for step, (x, y) in zip(range(1000), batches0(np.zeros((256, 64)), 32, 0)):
        model, opt_state = step_fn(model, opt_state, x, y)
        if step % 100 == 0:
            save0(f"ckpt_{step}.eqx", model, opt_state, step)


@eqx.filter_jit
def step_fn(model, opt_state, x, y):
    grads = eqx.filter_grad(lambda m: cross_entropy0(jax.vmap(m)(x), y))(model)
    updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), opt_state
'''


def training_file(lines: int, demo_copies: bool = False) -> str:
    """A training file of about `lines` lines, with one EQX102 finding in `main`.

    By default: one model, one optimizer, one step, and helper code (modules, data,
    metrics, evaluation, checkpoints) up to the length, as a long training script is.
    With `demo_copies`: the demo's model, optimizer and step repeated (a stress case:
    every copy is a make_with_state call and an optimizer for the rules to follow).
    """
    parts = [HEADER, EDITED_LINE, HEADER_NP]
    n = 0
    while sum(part.count("\n") for part in parts) + 20 < lines:
        parts.append((BLOCK if demo_copies else HELPERS).format(n=n))
        n += 1
    parts.append(MAIN if not demo_copies else "\nopt_state = optim0.init(model0)\n")
    return "".join(parts)


class Client(LanguageClient):
    def __init__(self) -> None:
        super().__init__("eqxlint-benchmark", "1")
        self.versions: dict[int, asyncio.Event] = {}
        self.last: Optional[lsp.PublishDiagnosticsParams] = None


async def session(lines: int, edits: int, memory_edits: int, memory_lines: int,
                  burst: int, demo_copies: bool) -> None:
    client = Client()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: lsp.PublishDiagnosticsParams) -> None:
        client.last = params
        if params.version in client.versions:
            client.versions[params.version].set()

    await client.start_io(sys.executable, "-m", "eqxlint", "server")
    folder = REPO / "benchmarks"
    await client.initialize_async(lsp.InitializeParams(
        capabilities=lsp.ClientCapabilities(), root_uri=from_fs_path(str(folder))))
    client.initialized(lsp.InitializedParams())
    text = training_file(lines, demo_copies)
    uri = from_fs_path(str(folder / "lsp_latency_sample.py"))  # never written to disk
    version = 1

    async def send(new_value: str, wait: bool = True, target: str = uri) -> float:
        nonlocal version
        version += 1
        if wait:
            client.versions[version] = asyncio.Event()
        start = time.perf_counter()
        # Replace the literal on line 5: what typing a digit does.
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=target, version=version),
            content_changes=[lsp.TextDocumentContentChangePartial(
                range=lsp.Range(start=lsp.Position(line=4, character=5),
                                end=lsp.Position(line=4, character=10)),
                text=new_value)]))
        if not wait:
            return 0.0
        await asyncio.wait_for(client.versions[version].wait(), 120)
        elapsed = time.perf_counter() - start
        del client.versions[version]
        return elapsed

    client.versions[1] = asyncio.Event()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=text)))
    await asyncio.wait_for(client.versions[1].wait(), 120)
    assert client.last is not None and client.last.diagnostics, "expected one finding"
    for i in range(5):  # warm-up
        await send(f"0.{i:03d}")
        libcst.parse_module(text)

    settings = Settings(rules=all_codes(), cache_dir=None)
    lint_source(text, "lsp_latency_sample.py", settings)
    latencies, parses, lints = [], [], []
    for i in range(edits):
        latencies.append(await send(f"0.{i % 1000:03d}"))
        start = time.perf_counter()
        libcst.parse_module(text)
        parses.append(time.perf_counter() - start)
        start = time.perf_counter()
        lint_source(text, "lsp_latency_sample.py", settings)
        lints.append(time.perf_counter() - start)
    median, bare = statistics.median(latencies), statistics.median(parses)
    linting = statistics.median(lints)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    kind = "the demo repeated" if demo_copies else "one model, helpers"
    print(f"file: {text.count(chr(10))} lines ({kind}); {edits} edits, each awaited")
    print(f"didChange -> publishDiagnostics: median {median * 1000:.1f} ms, "
          f"p95 {p95 * 1000:.1f} ms")
    print(f"bare libcst.parse_module, same text: median {bare * 1000:.1f} ms")
    print(f"the linter alone in this process (lint_source, every rule): median "
          f"{linting * 1000:.1f} ms = {linting / bare:.2f} x the bare parse")
    print(f"median latency / bare parse: {median / bare:.2f} (target <= 1.3)")

    if memory_edits:
        await memory_session(client, send, memory_edits, memory_lines, burst)

    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()


async def memory_session(client: Client, send: Any, edits: int, lines: int, burst: int
                         ) -> None:
    """`edits` edits of a smaller file, in bursts of `burst` (only the last one awaited,
    as when typing fast: the others are superseded), and the server's RSS growth."""
    uri = from_fs_path(str(REPO / "benchmarks" / "lsp_memory_sample.py"))
    text = training_file(lines)
    client.versions[1] = asyncio.Event()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(
        uri=uri, language_id="python", version=1, text=text)))
    await asyncio.wait_for(client.versions[1].wait(), 120)
    pid = client._server.pid  # type: ignore[union-attr]

    async def run(count: int) -> None:
        for i in range(count):
            await send(f"0.{i % 1000:03d}", wait=(i + 1) % burst == 0 or i == count - 1,
                       target=uri)

    await run(200)  # warm-up: imports, caches, allocator pools
    before = rss_mb(pid)
    started = time.perf_counter()
    await run(edits)
    after = rss_mb(pid)
    print(f"memory: {edits} edits of a {text.count(chr(10))}-line file (every {burst}th "
          f"awaited) in {time.perf_counter() - started:.0f} s; server RSS {before:.1f} MB -> "
          f"{after:.1f} MB (+{after - before:.1f} MB; target < 20 MB)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS (this measurement needs Linux /proc)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=50)
    parser.add_argument("--memory", type=int, default=0, metavar="EDITS",
                        help="also run this many edits and report the server's RSS growth")
    parser.add_argument("--demo-copies", action="store_true",
                        help="the stress file: the demo's model and step repeated")
    parser.add_argument("--memory-lines", type=int, default=200)
    parser.add_argument("--burst", type=int, default=10,
                        help="memory session: await the diagnostics of every Nth edit")
    args = parser.parse_args()
    asyncio.run(session(args.lines, args.edits, args.memory, args.memory_lines, args.burst,
                        args.demo_copies))


if __name__ == "__main__":
    main()
