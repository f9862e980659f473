"""A playground replica's models: one base model per base source, carrying several adapters.

Loading a base model is the slow part of a cold start (seconds to minutes for a
real model); a LoRA adapter is small. So a replica loads each base once and adds
every trained model of that base to it: the first request for another model of a
loaded base costs an adapter load, not a base load.

Adding a PEFT adapter to a model is itself not cheap: PEFT walks the whole model
and wraps every target module (about 75 ms for 56 modules on CPU, whatever the
base's size). Models whose adapters have the same layout (same LoRA rank, the same
target modules, no extra trained modules: every model a base's jobs train with
the same LoRA settings) therefore share one PEFT adapter, a *slot*, and PEFT's
hot-swap copies a model's weights into it when that model is asked (about 15 ms).
A model of another layout gets a slot of its own.

A merged model (POST /api/models/{id}/merge) has no base to share: it is loaded
whole from its own folder and held as a base that carries only itself.

Models and bases are evicted least recently used first; a base goes with its
last model, a slot with its last model.

Swapping weights and switching slots change the shared model, so everything that
touches one base (generating, adding or removing a model) holds that base's lock:
requests for models of one base run one at a time (on a CPU a generation already
uses every core, so little is lost), requests for models of different bases run
in parallel. Loads are serialized per replica, so a base is never loaded twice.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from forge.modeling.model_card import ModelCard
from forge.modeling.placement import CPU, Placement
from forge.modeling.quantization import BaseQuantization
from forge.playground.responder import LoadedModel, load_merged_model, read_model_meta, respond
from forge.schemas import GenerateRequest

# A base model as loaded: (model kind, base source, its quantization as JSON, or "" for full precision).
BaseKey = tuple[str, str, str]

T = TypeVar("T")
MAX_ADAPTERS = 4
MAX_BASES = 2
# A request whose adapter is evicted between its load and its turn loads it again; give up after this.
_LOAD_ATTEMPTS = 3


# Adapter settings that never change what a slot computes: hot-swap sets each model's own
# scaling (from lora_alpha), dropout is off at inference, the rest is bookkeeping.
_LAYOUT_IGNORES = {"lora_alpha", "base_model_name_or_path", "revision", "inference_mode", "peft_version"}


def adapter_layout(folder: Path) -> str | None:
    """What a slot must share with this adapter for its weights to be hot-swapped in; None: never."""
    config = json.loads((folder / "adapter_config.json").read_text())
    if (config.get("peft_type") != "LORA" or config.get("modules_to_save") or config.get("use_dora")
            or config.get("trainable_token_indices")):
        return None  # weights besides lora_A/lora_B, which hot-swap does not carry
    for key in ("target_modules", "exclude_modules"):
        if isinstance(config.get(key), list):  # saved as a set: its order is arbitrary
            config[key] = sorted(config[key])
    return json.dumps({k: v for k, v in config.items() if k not in _LAYOUT_IGNORES}, sort_keys=True)


def _base_name(base_key: BaseKey) -> str:
    _, source, quantization = base_key
    return f"{source} ({BaseQuantization.model_validate_json(quantization).bits}-bit)" if quantization else source


@dataclass
class _Adapter:
    tokenizer: Any
    task: str
    folder: Path
    slot: str | None  # the PEFT adapter that holds this model's weights while it answers; None: merged, no PEFT


@dataclass(eq=False)
class _Base:
    model: Any  # the transformers model; wrapped in a PeftModel once the first adapter is added
    kind: str
    peft: Any = None
    active: str | None = None  # the PEFT adapter (slot) generation uses
    slots: dict[str, str | None] = field(default_factory=dict)  # slot -> its layout (None: one model's own)
    occupant: dict[str, str | None] = field(default_factory=dict)  # slot -> the model whose weights are in it
    adapters: dict[str, _Adapter] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next_slot: int = 0

    def new_slot_name(self) -> str:
        self._next_slot += 1
        return f"slot_{self._next_slot}"


class AdapterCache:
    """Trained models by key (the model id), loaded as adapters onto shared base models."""

    def __init__(self, builtin_dir: Path, *, trust_remote_code: bool = False, max_adapters: int = MAX_ADAPTERS,
                 max_bases: int = MAX_BASES, placement: Placement = CPU) -> None:
        self.builtin_dir = builtin_dir
        # Where bases load (a GPU replica's device, in the checkpoint's dtype): forge.modeling.placement.
        self.placement = placement
        self.trust_remote_code = trust_remote_code
        self.max_adapters = max_adapters
        self.max_bases = max_bases
        self._lock = threading.Lock()  # guards the two maps below; never held while loading or generating
        self._load_lock = threading.Lock()
        self._bases: OrderedDict[BaseKey, _Base] = OrderedDict()
        self._adapters: OrderedDict[str, tuple[BaseKey, str]] = OrderedDict()  # key -> (base key, name)

    def loaded(self) -> dict[str, list[str]]:
        """Base -> the keys of the models it carries (what this replica holds).

        A base is named by its source, with " (4-bit)" or " (8-bit)" when it is quantized.
        """
        with self._lock:
            held: dict[str, list[str]] = {_base_name(b): [] for b in self._bases}
            for key, (base_key, _) in self._adapters.items():
                held[_base_name(base_key)].append(key)
            return held

    def load(self, key: str, model_dir: Callable[[], Path]) -> None:
        """Make the model `key` ready; `model_dir` gives its local folder, asked only when it must be loaded."""
        self._get(key, model_dir)

    def respond(self, key: str, request: GenerateRequest, model_dir: Callable[[], Path]) -> dict[str, Any]:
        return self.answer(key, model_dir, lambda loaded: respond(loaded, request))

    def answer(self, key: str, model_dir: Callable[[], Path], work: Callable[[LoadedModel], T], *,
               use_base: bool = False) -> T:
        """Run `work` with the model `key` active on its base (holding the base's lock throughout).

        With `use_base`, `work` gets the base itself, the adapter switched off, prompted as model `key`
        (its task and tokenizer): the answer to compare against. A merged model has no base to offer.
        """
        for _ in range(_LOAD_ATTEMPTS):
            base, name = self._get(key, model_dir)
            with base.lock:
                adapter = base.adapters.get(name)
                if adapter is None:  # evicted after _get: load it again
                    continue
                if use_base and adapter.slot is None:
                    raise ValueError(f"model {key} is merged: its base is not loaded beside it")
                self._activate(base, name, adapter)
                model = base.model if adapter.slot is None else base.peft
                loaded = LoadedModel(model, adapter.tokenizer, adapter.task, base.kind)
                if not use_base:
                    return work(loaded)
                with base.peft.disable_adapter():
                    return work(loaded)
        raise RuntimeError(f"model {key} was evicted {_LOAD_ATTEMPTS} times before it could answer")

    # ------------------------------------------------------------------ internals

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
        return base_key, base if base is not None else self._load_base(card, quantization)

    def _load_merged(self, key: str, name: str, folder: Path, card: ModelCard) -> tuple[BaseKey, _Base]:
        """A merged model: full weights of its own, held as a base that carries only itself (no PEFT, no slot)."""
        from forge.modeling.loading import load_tokenizer

        model = load_merged_model(folder, card, self.builtin_dir, trust_remote_code=self.trust_remote_code,
                                  placement=self.placement)
        base = _Base(model=model, kind=card.model_kind)
        tokenizer = load_tokenizer(str(folder), self.builtin_dir, trust_remote_code=self.trust_remote_code)
        base.adapters[name] = _Adapter(tokenizer, card.task, folder, slot=None)
        return (card.model_kind, f"model {key} (merged)", ""), base

    def _load_base(self, card: ModelCard, quantization: BaseQuantization | None) -> _Base:
        from forge.modeling.loading import load_model

        model = load_model(card.model_kind, card.base_model_source, self.builtin_dir,
                           trust_remote_code=self.trust_remote_code, placement=self.placement,
                           quantization=quantization).eval()
        return _Base(model=model, kind=card.model_kind)

    def _add_adapter(self, base: _Base, name: str, folder: Path, card: ModelCard) -> None:
        from peft import PeftModel

        from forge.modeling.loading import load_tokenizer

        tokenizer = load_tokenizer(str(folder), self.builtin_dir, trust_remote_code=self.trust_remote_code)
        layout = adapter_layout(folder)
        with base.lock:
            slot = next((s for s, held in base.slots.items() if layout is not None and held == layout), None)
            if slot is None:  # the first model of its layout: PEFT wraps the target modules once
                slot = base.new_slot_name()
                if base.peft is None:
                    base.peft = PeftModel.from_pretrained(base.model, str(folder), adapter_name=slot).eval()
                    base.active = slot
                else:
                    base.peft.load_adapter(str(folder), adapter_name=slot)  # inactive until set_adapter
                base.slots[slot] = layout
                base.occupant[slot] = name
            base.adapters[name] = _Adapter(tokenizer, card.task, folder, slot)

    @staticmethod
    def _activate(base: _Base, name: str, adapter: _Adapter) -> None:
        """Make the base answer as model `name` (under base.lock)."""
        from peft.utils.hotswap import hotswap_adapter

        if adapter.slot is None:  # a merged model answers as itself
            return
        if base.active != adapter.slot:
            base.peft.set_adapter(adapter.slot)
            base.active = adapter.slot
        if base.occupant[adapter.slot] != name:
            # Until the swap completes the slot's weights are nobody's.
            base.occupant[adapter.slot] = None
            hotswap_adapter(base.peft, str(adapter.folder), adapter_name=adapter.slot,
                            torch_device=str(base.model.device))
            base.occupant[adapter.slot] = name

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
        del self._bases[base_key]
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
            if adapter is None:
                return
            if not base.adapters:  # the base itself was dropped from the cache; leave it whole
                return
            if any(other.slot == adapter.slot for other in base.adapters.values()):
                return  # the slot serves other models; whoever is asked next swaps in
            if base.active == adapter.slot:
                base.active = next(iter(base.adapters.values())).slot
                base.peft.set_adapter(base.active)
            base.peft.delete_adapter(adapter.slot)
            del base.slots[adapter.slot], base.occupant[adapter.slot]
