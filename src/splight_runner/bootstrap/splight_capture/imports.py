"""Run a function right after a named module has been imported, without importing it.

The bootstrap runs before any component code and must not import what it
watches (splight-lib costs hundreds of milliseconds and would change the
component's import order; OpenTelemetry may not be installed at all). So one
tiny finder sits at the front of ``sys.meta_path``; for a watched name it lets
the regular finders locate the module and wraps only the loader, which calls
the registered functions once the module body has run. Every other import
costs one dict look-up.

A module already imported when a function is registered is handed to it at
once. A function that raises is ignored: the component's import must never
fail because of us.
"""

from __future__ import annotations

import _thread  # not ``threading``: a component that starts no thread does not import it for us
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable

_lock = _thread.RLock()
_watched = {}  # type: Dict[str, List[Callable[[ModuleType], None]]]
_finder = None  # type: _Finder | None


def after_import(name: str, function: Callable[[ModuleType], None]) -> None:
    """Call ``function(module)`` once module ``name`` has executed (now, if it already has)."""
    global _finder
    with _lock:
        _watched.setdefault(name, []).append(function)
        if _finder is None:
            _finder = _Finder()
            sys.meta_path.insert(0, _finder)
    module = sys.modules.get(name)
    if module is not None:
        _call(function, module)


def forget(function: Callable[[ModuleType], None]) -> None:
    """Stop calling ``function`` (modules it already patched stay patched); the finder goes with the last."""
    global _finder
    with _lock:
        for name in list(_watched):
            _watched[name] = [f for f in _watched[name] if f is not function]
            if not _watched[name]:
                del _watched[name]
        if not _watched and _finder is not None:
            try:
                sys.meta_path.remove(_finder)
            except ValueError:
                pass
            _finder = None


def _call(function: Callable[[ModuleType], None], module: ModuleType) -> None:
    try:
        function(module)
    except Exception:
        pass


class _Finder:
    """``sys.meta_path`` entry that hands watched modules to a wrapping loader.

    It never finds anything itself: it asks the finders after it, exactly as
    the import system would, and only wraps the loader of what they return.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _watched:
            return None
        try:
            return self._find(fullname, path, target)
        except Exception:
            return None

    def _find(self, fullname: str, path: Any, target: Any) -> Any:
        meta_path = sys.meta_path
        try:
            rest = meta_path[meta_path.index(self) + 1 :]
        except ValueError:
            return None
        for finder in rest:
            find_spec = getattr(finder, "find_spec", None)
            if find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is None:
                continue
            loader = spec.loader
            if loader is not None and hasattr(loader, "exec_module"):
                spec.loader = _CallingLoader(loader, spec)
            return spec
        return None


class _CallingLoader:
    """Delegates to the real loader and calls the watchers once the module has executed.

    Before the module body runs, ``__spec__.loader`` and ``__loader__`` are
    put back to the real loader, so the module (and anyone inspecting it later)
    never sees this object.
    """

    def __init__(self, loader: Any, spec: Any) -> None:
        self._loader = loader
        self._spec = spec

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        loader = self._loader
        try:
            self._spec.loader = loader
            module.__loader__ = loader
        except Exception:
            pass
        loader.exec_module(module)
        with _lock:
            functions = list(_watched.get(module.__name__, ()))
        for function in functions:
            _call(function, module)
