"""Forward hooks a method attaches to a model, kept per model so that restoring the model removes them all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from torch import nn
from torch.utils.hooks import RemovableHandle

Hook = Callable[[nn.Module, Any, Any], Any]

# model → the handles of the hooks attached to its modules (a model that is dropped takes its entry along)
ATTACHED: WeakKeyDictionary[nn.Module, list[RemovableHandle]] = WeakKeyDictionary()


def attach(model: nn.Module, module: nn.Module, hook: Hook) -> None:
    """Attach ``hook`` as a forward hook of ``module`` (a module of ``model``); :func:`detach` removes it."""
    ATTACHED.setdefault(model, []).append(module.register_forward_hook(hook))


def attached(model: nn.Module) -> int:
    """How many hooks are attached to ``model``'s modules now."""
    return len(ATTACHED.get(model, []))


def detach(model: nn.Module) -> int:
    """Remove every hook attached to ``model``'s modules; return how many there were."""
    handles = ATTACHED.pop(model, [])
    for handle in handles:
        handle.remove()
    return len(handles)
