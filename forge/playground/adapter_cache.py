"""A playground replica's models: one base model per base source, carrying several adapters.

Loading a base model is the slow part of a cold start (seconds to minutes for a
real model); a LoRA adapter is small. So a replica loads each base once and adds
every trained model of that base to it: the first request for another model of a
loaded base costs an adapter load, not a base load.

Each trained model is a PEFT adapter of its own on its base (adding one walks the
base's modules once: about 75 ms for 56 modules on CPU, whatever the base's size), so
every model held can answer at any moment: requests for several models of one base are
generated together in one batch, each row with its own adapter (PEFT's mixed-adapter
inference), by the base's Batcher (forge.playground.batching, which says when a batch
starts and who may share it). A request answered alone is a batch of one.

A merged model (POST /api/models/{id}/merge) has no base to share: it is loaded
whole from its own folder and held as a base that carries only itself (its
concurrent requests are still batched together).

Models and bases are evicted least recently used first; a base goes with its
last model.

A batch and everything that changes a base (adding or removing a model) hold that
base's lock; a request waits for its batch without it. Extractive QA bases have no
batcher: their requests run one at a time under the lock. Requests for models of
different bases run in parallel. Loads are serialized per replica, so a base is
never loaded twice.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from forge.modeling.batch_generation import BASE_ADAPTER, Continuation, Continued, Row, generate_together
from forge.modeling.model_card import ModelCard
from forge.modeling.placement import CPU, Placement
from forge.modeling.quantization import BaseQuantization
from forge.playground.batching import GATHER_S, MAX_ROWS, Batcher, BatcherClosed
from forge.playground.responder import LoadedModel, load_merged_model, read_model_meta, respond
from forge.schemas import GenerateRequest

# A base model as loaded: (model kind, base source, its quantization as JSON, or "" for full precision).
BaseKey = tuple[str, str, str]

T = TypeVar("T")
MAX_ADAPTERS = 4
MAX_BASES = 2
# A request whose adapter is evicted between its load and its turn loads it again; give up after this.
_LOAD_ATTEMPTS = 3
_GENERATIVE_KINDS = {"causal-lm", "seq2seq-lm"}


def _base_name(base_key: BaseKey) -> str:
    _, source, quantization = base_key
    return f"{source} ({BaseQuantization.model_validate_json(quantization).bits}-bit)" if quantization else source


def _mixable(folder: Path) -> bool:
    """Whether PEFT can apply this adapter to some rows of a batch and other adapters to the rest.

    Only plain LoRA weights can: PEFT refuses DoRA in a mixed batch, and a fully trained module
    (`modules_to_save`, trainable tokens) fails for rows of adapters that lack it. Such a model's
    requests are batched among themselves, its adapter active.
    """
    config = json.loads((folder / "adapter_config.json").read_text())
    return (config.get("peft_type") == "LORA" and not config.get("use_dora") and not config.get("modules_to_save")
            and not config.get("trainable_token_indices"))


class _Evicted(RuntimeError):
    """The model left the replica between its load and its batch: load it again."""


@dataclass
class _Adapter:
    tokenizer: Any
    task: str
    peft_name: Optional[str]  # the model's PEFT adapter on its base; None: a merged model, no PEFT
    mixable: bool = True  # may share a batch with other models' rows


@dataclass
class _Ask:
    """A request's continuation, in a base's batch queue."""

    name: str  # the model's name on its base
    continuation: Continuation
    use_base: bool = False  # answer with the bare base, prompted as the model (its row: "__base__")


@dataclass(eq=False)
class _Base:
    model: Any  # the transformers model; wrapped in a PeftModel once the first adapter is added
    kind: str
    name: str  # as loaded() names it
    peft: Any = None
    active: Optional[str] = None  # the PEFT adapter a forward without `adapter_names` uses
    adapters: dict[str, _Adapter] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    batcher: Optional[Batcher[_Ask, Continued]] = None  # generative bases only

    def activate(self, adapter: _Adapter) -> None:
        """Make a forward without `adapter_names` answer as `adapter`'s model (under self.lock)."""
        if adapter.peft_name is not None and self.active != adapter.peft_name:
            self.peft.set_adapter(adapter.peft_name)
            self.active = adapter.peft_name

    def run_batch(self, asks: list[_Ask]) -> list[Union[Continued, BaseException]]:
        """Generate every ask's continuation in one batch, each with its model's adapter (or none)."""
        with self.lock:
            present = [ask for ask in asks if ask.name in self.adapters]
            outcomes: dict[int, Union[Continued, BaseException]] = {
                id(ask): _Evicted(ask.name) for ask in asks if ask.name not in self.adapters}
            if present:
                done = self._generate(present)
                outcomes.update((id(ask), outcome) for ask, outcome in zip(present, done))
        return [outcomes[id(ask)] for ask in asks]

    def _generate(self, asks: list[_Ask]) -> list[Continued]:
        """Rows of mixable models and the bare base, or of one model (the only rows an unmixable one shares)."""
        adapters = [self.adapters[ask.name] for ask in asks]
        names = [BASE_ADAPTER if ask.use_base else adapter.peft_name for ask, adapter in zip(asks, adapters)]
        # Rows of one model need no `adapter_names` (PEFT's per-row routing costs about a tenth of a
        # step); rows of several are all mixable (the batcher's keys).
        one_model = len(set(names)) == 1 and names[0] != BASE_ADAPTER
        mixed = self.peft is not None and not one_model
        # Made active: the one model of an unmixed batch; in a mixed one, the fully trained modules
        # of the base's other models then pass every row through (_other_models_modules_off).
        self.activate(next((a for a, ask in zip(adapters, asks) if not ask.use_base), adapters[0]))
        rows = [Row(ask.continuation, adapter.tokenizer, name if mixed else None)
                for ask, adapter, name in zip(asks, adapters, names)]
        with self._other_models_modules_off() if mixed else nullcontext():
            return generate_together(self.model if self.peft is None else self.peft, rows,
                                     seq2seq=self.kind == "seq2seq-lm")

    @contextmanager
    def _other_models_modules_off(self) -> Iterator[None]:
        """Fully trained modules of the base's unmixable models pass a mixed batch through untouched.

        PEFT would apply such a module to the rows of a mixed batch per adapter, and fail for the
        adapters that lack it: none of the batch's models has one, so every row takes the base's own.
        """
        from peft.utils import AuxiliaryTrainingWrapper

        wrappers = [] if all(a.mixable for a in self.adapters.values()) else [
            module for module in self.peft.modules() if isinstance(module, AuxiliaryTrainingWrapper)]
        for wrapper in wrappers:
            wrapper.enable_adapters(False)
        try:
            yield
        finally:
            for wrapper in wrappers:
                wrapper.enable_adapters(True)


class AdapterCache:
    """Trained models by key (the model id), loaded as adapters onto shared base models."""

    def __init__(self, builtin_dir: Path, *, trust_remote_code: bool = False, max_adapters: int = MAX_ADAPTERS,
                 max_bases: int = MAX_BASES, placement: Placement = CPU, batch_rows: int = MAX_ROWS,
                 batch_wait_s: float = GATHER_S, thread_setup: Callable[[], None] = lambda: None) -> None:
        self.builtin_dir = builtin_dir
        # Where bases load (a GPU replica's device, in the checkpoint's dtype): forge.modeling.placement.
        self.placement = placement
        self.trust_remote_code = trust_remote_code
        self.max_adapters = max_adapters
        self.max_bases = max_bases
        # Batching (forge.playground.batching): the most rows in a batch, and how long an idle base waits
        # for the requests sent together with the first.
        self.batch_rows = batch_rows
        self.batch_wait_s = batch_wait_s
        self.thread_setup = thread_setup  # run first in each base's batch thread, which generates
        self._lock = threading.Lock()  # guards the two maps below; never held while loading or generating
        self._load_lock = threading.Lock()
        self._bases: OrderedDict[BaseKey, _Base] = OrderedDict()
        self._adapters: OrderedDict[str, tuple[BaseKey, str]] = OrderedDict()  # key -> (base key, name)
        self._dropped_sizes: dict[str, dict[int, int]] = {}  # batch sizes of bases no longer held

    def loaded(self) -> dict[str, list[str]]:
        """Base -> the keys of the models it carries (what this replica holds).

        A base is named by its source, with " (4-bit)" or " (8-bit)" when it is quantized.
        """
        with self._lock:
            held: dict[str, list[str]] = {_base_name(b): [] for b in self._bases}
            for key, (base_key, _) in self._adapters.items():
                held[_base_name(base_key)].append(key)
            return held

    def batch_sizes(self) -> dict[str, dict[int, int]]:
        """Base -> batch size -> how many batches of that size it ran (bases dropped since included)."""
        with self._lock:
            bases = list(self._bases.values())
            sizes = {name: dict(counts) for name, counts in self._dropped_sizes.items()}
        for base in bases:
            if base.batcher is not None:
                counts = sizes.setdefault(base.name, {})
                for size, count in base.batcher.sizes().items():
                    counts[size] = counts.get(size, 0) + count
        return sizes

    def load(self, key: str, model_dir: Callable[[], Path]) -> None:
        """Make the model `key` ready; `model_dir` gives its local folder, asked only when it must be loaded."""
        self._get(key, model_dir)

    def respond(self, key: str, request: GenerateRequest, model_dir: Callable[[], Path]) -> dict[str, Any]:
        return self.answer(key, model_dir, lambda loaded: respond(loaded, request))

    def answer(self, key: str, model_dir: Callable[[], Path], work: Callable[[LoadedModel], T], *,
               use_base: bool = False) -> T:
        """Run `work` with the model `key`.

        A generative model's text goes through its base's batch queue (`LoadedModel.continue_text`),
        and `work` runs without the base's lock; an extractive QA model's `work` runs under it.
        With `use_base`, the base itself answers, its adapters off, prompted as model `key` (its
        task and tokenizer): the answer to compare against. A merged model has no base beside it.
        """
        for _ in range(_LOAD_ATTEMPTS):
            base, name = self._get(key, model_dir)
            adapter = base.adapters.get(name)
            if adapter is None:  # evicted after _get: load it again
                continue
            if use_base and adapter.peft_name is None:
                raise ValueError(f"model {key} is merged: its base is not loaded beside it")
            model = base.model if base.peft is None else base.peft
            if base.batcher is None:
                with base.lock:
                    if name not in base.adapters:
                        continue
                    base.activate(adapter)
                    with base.peft.disable_adapter() if use_base else nullcontext():
                        return work(LoadedModel(model, adapter.tokenizer, adapter.task, base.kind))
            ask = partial(self._continue_in_batch, base, name, adapter, use_base)
            try:
                return work(LoadedModel(model, adapter.tokenizer, adapter.task, base.kind, batch=ask))
            except (_Evicted, BatcherClosed):  # dropped before its batch ran: nothing was generated
                continue
        raise RuntimeError(f"model {key} was evicted {_LOAD_ATTEMPTS} times before it could answer")

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _continue_in_batch(base: _Base, name: str, adapter: _Adapter, use_base: bool,
                           continuation: Continuation) -> Continued:
        assert base.batcher is not None
        together = (continuation.decoding(), None if adapter.mixable or use_base else name)
        return base.batcher.submit(_Ask(name, continuation, use_base), together).result()

    def _lookup(self, key: str) -> tuple[_Base, str] | None:
        with self._lock:
            entry = self._adapters.get(key)
            if entry is None or entry[0] not in self._bases:
                return None
            base_key, name = entry
            self._adapters.move_to_end(key)
            self._bases.move_to_end(base_key)
            return self._bases[base_key], name

    def _get(self, key: str, model_dir: Callable[[], Path]) -> tuple[_Base, str]:
        found = self._lookup(key)
        if found is not None:
            return found
        with self._load_lock:
            found = self._lookup(key)
            if found is not None:
                return found
            folder = model_dir()
            card = read_model_meta(folder)
            name = f"model_{key}"
            if card.merged is not None:
                base_key, base = self._load_merged(key, name, folder, card)
            else:
                base_key, base = self._base_of(card)
                self._add_adapter(base, name, folder, card)
            with self._lock:
                self._bases[base_key] = base
                self._bases.move_to_end(base_key)
                self._adapters[key] = (base_key, name)
                self._adapters.move_to_end(key)
                evicted = self._pick_evictions(key)
            for victim, victim_name in evicted:
                self._remove_adapter(victim, victim_name)
            return base, name

    def _base_of(self, card: ModelCard) -> tuple[BaseKey, _Base]:
        """The loaded base an adapter model goes on, loaded now if no model of it is held."""
        # A qlora model's base is quantized as it was trained: not the same base as a full-precision one.
        quantization = card.quantization()
        base_key = (card.model_kind, card.base_model_source,
                    quantization.model_dump_json() if quantization is not None else "")
        with self._lock:
            base = self._bases.get(base_key)
        return base_key, base if base is not None else self._load_base(base_key, card, quantization)

    def _new_base(self, base_key: BaseKey, model: Any) -> _Base:
        base = _Base(model=model, kind=base_key[0], name=_base_name(base_key))
        if base.kind in _GENERATIVE_KINDS:
            base.batcher = Batcher(base.run_batch, name=f"batches of {base.name}", max_rows=self.batch_rows,
                                   gather_s=self.batch_wait_s, on_start=self.thread_setup)
        return base

    def _load_merged(self, key: str, name: str, folder: Path, card: ModelCard) -> tuple[BaseKey, _Base]:
        """A merged model: full weights of its own, held as a base that carries only itself (no PEFT)."""
        from forge.modeling.loading import load_tokenizer

        model = load_merged_model(folder, card, self.builtin_dir, trust_remote_code=self.trust_remote_code,
                                  placement=self.placement)
        base_key = (card.model_kind, f"model {key} (merged)", "")
        base = self._new_base(base_key, model)
        tokenizer = load_tokenizer(str(folder), self.builtin_dir, trust_remote_code=self.trust_remote_code)
        base.adapters[name] = _Adapter(tokenizer, card.task, peft_name=None)
        return base_key, base

    def _load_base(self, base_key: BaseKey, card: ModelCard, quantization: BaseQuantization | None) -> _Base:
        from forge.modeling.loading import load_model

        model = load_model(card.model_kind, card.base_model_source, self.builtin_dir,
                           trust_remote_code=self.trust_remote_code, placement=self.placement,
                           quantization=quantization).eval()
        return self._new_base(base_key, model)

    def _add_adapter(self, base: _Base, name: str, folder: Path, card: ModelCard) -> None:
        from peft import PeftModel

        from forge.modeling.loading import load_tokenizer

        tokenizer = load_tokenizer(str(folder), self.builtin_dir, trust_remote_code=self.trust_remote_code)
        with base.lock:
            if base.peft is None:
                base.peft = PeftModel.from_pretrained(base.model, str(folder), adapter_name=name).eval()
                base.active = name
            else:
                base.peft.load_adapter(str(folder), adapter_name=name)  # inactive until a batch names it
            base.adapters[name] = _Adapter(tokenizer, card.task, peft_name=name, mixable=_mixable(folder))

    def _pick_evictions(self, keep: str) -> list[tuple[_Base, str]]:
        """Drop least recently used adapters, then bases, from the maps (under self._lock)."""
        evicted = []
        while len(self._adapters) > self.max_adapters:
            victim = next(k for k in self._adapters if k != keep)
            base_key, name = self._adapters.pop(victim)
            if base_key in self._bases:
                evicted.append((self._bases[base_key], name))
        keep_base = self._adapters[keep][0]
        while len(self._bases) > self.max_bases:
            base_key = next(b for b in self._bases if b != keep_base)
            self._drop_base(base_key)
        for base_key in [b for b in self._bases if not any(e[0] == b for e in self._adapters.values())]:
            self._drop_base(base_key)  # a base with no adapter left serves nobody
        return [(base, name) for base, name in evicted if base in self._bases.values()]

    def _drop_base(self, base_key: BaseKey) -> None:
        """Forget a base (under self._lock); a batch running on it finishes, its queued requests load it again."""
        base = self._bases.pop(base_key)
        if base.batcher is not None:
            base.batcher.close()
            counts = self._dropped_sizes.setdefault(base.name, {})
            for size, count in base.batcher.sizes().items():
                counts[size] = counts.get(size, 0) + count
        for key in [k for k, (b, _) in self._adapters.items() if b == base_key]:
            del self._adapters[key]
        if self.placement.on_cuda:
            # Hand the dropped base's memory back to the GPU (a training job may share it). A request
            # still generating with it keeps it until it ends; the next drop returns it then.
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()

    @staticmethod
    def _remove_adapter(base: _Base, name: str) -> None:
        with base.lock:
            adapter = base.adapters.pop(name, None)
            if adapter is None or adapter.peft_name is None:
                return
            if not base.adapters:  # the base itself was dropped from the cache; leave it whole
                return
            if base.active == adapter.peft_name:
                base.activate(next(iter(base.adapters.values())))
            base.peft.delete_adapter(adapter.peft_name)
