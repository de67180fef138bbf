"""Health: report every status transition of splight-lib's execution engine.

The bootstrap runs before any component code and must not import splight-lib
(importing it costs hundreds of milliseconds and would change the component's
import order). So ``install`` only asks :mod:`.imports` to patch the engine
class right after the component imports one of the modules that define it.

What is patched, and why:

* splight-lib >= 4.4 (``splight_lib.execution.engine.ExecutionEngine``): every
  state change is an assignment ``self._state = EngineStatus.X`` (in
  ``__init__``, ``start``, ``stop`` and the failed-critical-task listener).
  ``start`` assigns ``Running`` and then blocks in the scheduler for the life
  of the component, so wrapping methods cannot see the transition when it
  happens; a data descriptor named ``_state`` on the class sees every
  assignment at the moment it is made, from whichever thread makes it, in
  every version, including states (``Finished``) that no method of the
  installed version sets.
  The failed-critical-task listener calls ``stop()`` (``Stopped``) and then
  assigns ``Failed`` a few microseconds later: the engine never *is* stopped
  for an observer, so assignments made inside the listener are coalesced and
  only its final state is reported.
* splight-lib 4.0-4.3 (``splight_lib.execution.ExecutionClient``) has no state
  at all: ``healthcheck()`` derives ``(alive, ComponentStatus)`` from its
  threads. Its result is reported whenever anybody calls it, and it is also
  evaluated right after ``start(job)`` and when ``terminate_all()`` runs
  because a thread or the main program raised, so ``Running`` and ``Failed``
  do not wait for the component's next poll.

Nothing here may change what the component sees: the patched code returns the
same values and raises the same exceptions, and any failure of our own code is
swallowed.
"""

from __future__ import annotations

import _thread  # not ``threading``: a component that starts no thread does not import it for us
import os
import sys

from . import imports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any, Callable

__all__ = ["install", "uninstall"]

#: Modules whose execution defines an engine class we patch.
_TARGETS = frozenset(("splight_lib.execution", "splight_lib.execution.engine"))
#: Never reported: it means "no information", not a state of the component.
_NEVER_REPORTED = frozenset(("Unknown",))
#: A constructor can only initialize; old engines (4.4/4.5) start as ``Stopped``,
#: which would tell the Engine the component ended before it even started.
_TERMINAL = frozenset(("Stopped", "Failed", "Finished", "Succeeded"))
#: Listener names (4.4 spelled it ``_task_fail_callbak``) whose intermediate
#: states are not real transitions.
_COMPOUND_METHODS = ("_task_fail_callback", "_task_fail_callbak")

_lock = _thread.RLock()
_report: Callable[[str], None] | None = None
_last: str | None = None
_watching = False
#: Engine classes already patched (a WeakSet, made with the first splight-lib module seen).
_patched: Any = None
_local = _thread._local()


def _after_fork_in_child() -> None:
    """A fork taken while another thread held the lock must not deadlock the child."""
    global _lock
    _lock = _thread.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def install(report: Callable[[str], None]) -> None:
    """Arrange for every status transition of splight-lib's execution engine to call report(status).

    Idempotent: a second call only replaces the callback. Works whether
    splight_lib is imported before or after install(): modules already in
    ``sys.modules`` are patched now, the others when they are imported.
    """
    global _report, _watching
    with _lock:
        _report = report
        watch = not _watching
        _watching = True
    if watch:
        for name in _TARGETS:
            imports.after_import(name, _patch_module)


def uninstall() -> None:
    """Remove the import hook and stop reporting (for tests).

    Classes already patched stay patched but report nothing: un-patching a
    class while engines may be running in other threads is riskier than an
    inert hook.
    """
    global _report, _watching, _last
    imports.forget(_patch_module)
    with _lock:
        _watching = False
        _report = None
        _last = None


# --- reporting ---------------------------------------------------------------


def _status_text(value: Any) -> str | None:
    """The text the Engine receives for an engine state, or None to skip it.

    splight-lib >= 4.6 uses ``PascalCaseStrEnum`` (value ``"Running"``); 4.4
    used a plain ``Enum`` with ``auto()`` integers, whose name is the state.
    """
    enum = sys.modules.get("enum")  # never imported by the component: no value can be an Enum
    if isinstance(value, str):
        text = str(getattr(value, "value", value))
    elif enum is not None and isinstance(value, enum.Enum):
        raw = value.value
        text = raw if isinstance(raw, str) else value.name.title().replace("_", "")
    else:
        return None
    if not text or text in _NEVER_REPORTED:
        return None
    return text


def _emit(status: str | None) -> None:
    """Call the callback if ``status`` differs from the last reported one.

    The lock makes check-and-report atomic, so reports from several threads
    reach the callback in the order the transitions were decided, never twice.
    """
    global _last
    if status is None:
        return
    try:
        with _lock:
            report = _report
            if report is None or status == _last:
                return
            _last = status
            report(status)
    except Exception:
        pass


def _in_compound() -> bool:
    return getattr(_local, "depth", 0) > 0


# --- splight-lib >= 4.4: ExecutionEngine ---------------------------------------


class _StateSlot:
    """Data descriptor standing in for the engine's ``_state`` instance attribute.

    The value still lives in the instance ``__dict__`` under the same name, so
    ``vars(engine)``, ``state`` and ``healthcheck()`` see exactly what they did.
    """

    def __init__(self, fallback: Any, has_fallback: bool) -> None:
        self._fallback = fallback
        self._has_fallback = has_fallback

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            if self._has_fallback:
                return self._fallback
            raise AttributeError("_state")
        try:
            return obj.__dict__["_state"]
        except KeyError:
            if self._has_fallback:
                return self._fallback
            raise AttributeError(f"{type(obj).__name__!r} object has no attribute '_state'") from None

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_state"] = value
        try:
            _state_assigned(obj, value)
        except Exception:
            pass

    def __delete__(self, obj: Any) -> None:
        try:
            del obj.__dict__["_state"]
        except KeyError:
            raise AttributeError("_state") from None


def _state_assigned(engine: Any, value: Any) -> None:
    if _in_compound():
        return  # the compound method reports its final state on exit
    status = _status_text(value)
    if status is None:
        return
    if getattr(_local, "constructing", 0) and status in _TERMINAL:
        return
    _emit(status)


def _wrap_constructor(original: Callable[..., Any]) -> Callable[..., Any]:
    from functools import wraps  # here: splight-lib, being patched, imported it

    @wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> Any:
        _local.constructing = getattr(_local, "constructing", 0) + 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _local.constructing -= 1

    return __init__


def _wrap_compound(original: Callable[..., Any]) -> Callable[..., Any]:
    from functools import wraps  # here: splight-lib, being patched, imported it

    @wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        _local.depth = getattr(_local, "depth", 0) + 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _local.depth -= 1
            if _local.depth == 0:
                try:
                    _emit(_status_text(self.__dict__.get("_state")))
                except Exception:
                    pass

    return wrapper


def _patch_engine(cls: type) -> None:
    existing = cls.__dict__.get("_state")
    if existing is not None and hasattr(existing, "__set__"):
        return  # someone else already owns the attribute; leave it alone
    cls._state = _StateSlot(existing, "_state" in cls.__dict__)
    init = cls.__dict__.get("__init__")
    if callable(init):
        cls.__init__ = _wrap_constructor(init)
    for name in _COMPOUND_METHODS:
        method = cls.__dict__.get(name)
        if callable(method):
            setattr(cls, name, _wrap_compound(method))


# --- splight-lib 4.0-4.3: ExecutionClient -------------------------------------


def _emit_client(client: Any, health: Any) -> None:
    """Report a 4.0-4.3 healthcheck result.

    Once a thread has raised, the outcome is decided (``Failed``, reported by
    ``terminate_all``); the ``Running`` that healthcheck still answers until
    that thread has actually ended is stale, and reporting it would flap.
    """
    status = _status_text(health[1])
    if status == "Running" and client.get_last_exception() is not None:
        return
    _emit(status)


def _patch_client(cls: type) -> None:
    from functools import wraps  # here: splight-lib, being patched, imported it

    originals = {
        name: cls.__dict__[name]
        for name in ("healthcheck", "start", "terminate_all")
        if callable(cls.__dict__.get(name))
    }
    if "healthcheck" not in originals:
        return
    healthcheck = originals["healthcheck"]

    @wraps(healthcheck)
    def patched_healthcheck(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = healthcheck(self, *args, **kwargs)
        try:
            _emit_client(self, result)
        except Exception:
            pass
        return result

    cls.healthcheck = patched_healthcheck

    start = originals.get("start")
    if start is not None:

        @wraps(start)
        def patched_start(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = start(self, *args, **kwargs)
            try:
                _emit_client(self, healthcheck(self))
            except Exception:
                pass
            return result

        cls.start = patched_start

    terminate_all = originals.get("terminate_all")
    if terminate_all is not None:

        @wraps(terminate_all)
        def patched_terminate_all(self: Any, *args: Any, **kwargs: Any) -> Any:
            # Runs from the excepthooks while the failing thread is still
            # alive; once it ends, healthcheck() answers Failed because the
            # exception is recorded. Report that now, not at the next poll.
            try:
                if self.get_last_exception() is not None:
                    _emit("Failed")
            except Exception:
                pass
            return terminate_all(self, *args, **kwargs)

        cls.terminate_all = patched_terminate_all


# --- import hook ---------------------------------------------------------------


def _patch_module(module: ModuleType) -> None:
    """Patch the engine classes *defined* by ``module`` (never re-exports twice)."""
    global _patched
    try:
        for attr, patch in (("ExecutionEngine", _patch_engine), ("ExecutionClient", _patch_client)):
            cls = module.__dict__.get(attr)
            if not isinstance(cls, type) or not cls.__module__.startswith("splight_lib"):
                continue
            with _lock:
                if _patched is None:
                    import weakref

                    _patched = weakref.WeakSet()
                if cls in _patched:
                    continue
                _patched.add(cls)
                patch(cls)
    except Exception:
        pass
