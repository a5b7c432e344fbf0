"""A stand-in for nvidia-ml-py that answers from a trace recorded on a real machine.

`tests/fakes/nvml_trace.py` records every call the wizard makes, on real GPUs, with its value
or the exception it raised; this module answers the same calls the same way. Quirks come
along: the binding's constants as recorded (nvidia-ml-py 13.615's `NVML_P2P_CAPS_INDEX_READ`
is the tuple `0,`), and arguments pass through ctypes' own conversion, so a tuple raises the
same `ctypes.ArgumentError` the real binding raises. A trace may name functions as `missing`
(an older binding lacks them: AttributeError).

Put this folder first on PYTHONPATH and FAKE_NVML_TRACE at a trace file; an unset or empty
FAKE_NVML_TRACE behaves like a machine with no driver.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

# A C function with no argtypes that ignores its arguments: ctypes converts them exactly as it
# converts the arguments of NVML's functions, which the real binding calls the same way.
_CONVERT = ctypes.CDLL(None).getpid


class NVMLError(Exception):
    message = "Unknown Error"

    def __str__(self) -> str:
        return self.args[0] if self.args else self.message


def _error_class(name: str, message: str) -> type[NVMLError]:
    cls = type(name, (NVMLError,), {"message": message})
    globals()[name] = cls
    return cls


NVMLError_Uninitialized = _error_class("NVMLError_Uninitialized", "Uninitialized")
NVMLError_InvalidArgument = _error_class("NVMLError_InvalidArgument", "Invalid Argument")
NVMLError_NotSupported = _error_class("NVMLError_NotSupported", "Not Supported")
NVMLError_NotFound = _error_class("NVMLError_NotFound", "Not Found")
NVMLError_LibraryNotFound = _error_class(
    "NVMLError_LibraryNotFound", "NVML Shared Library Not Found"
)
NVMLError_FunctionNotFound = _error_class("NVMLError_FunctionNotFound", "Function Not Found")

_path = os.environ.get("FAKE_NVML_TRACE", "")
_TRACE: dict[str, Any] = json.load(open(_path)) if _path else {}  # noqa: SIM115
_CALLS: dict[str, Any] = _TRACE.get("calls", {})

for _name, _value in _TRACE.get("constants", {}).items():
    globals()[_name] = tuple(_value["tuple"]) if isinstance(_value, dict) else _value


def _trace_module() -> ModuleType:
    """The recorder beside this file, loaded by path: this module is imported as `pynvml`,
    outside any package, and answers exactly the calls the recorder makes."""
    spec = importlib.util.spec_from_file_location(
        "nvml_trace", Path(__file__).with_name("nvml_trace.py")
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_RECORDER = _trace_module()


class _Handle(int):
    """What nvmlDeviceGetHandleByIndex returns here: the GPU's index."""


def _plain(arg: Any) -> Any:
    return int(arg) if isinstance(arg, _Handle) else arg


def _shaped(value: Any) -> Any:
    if isinstance(value, dict):
        return SimpleNamespace(**value)
    if isinstance(value, list):
        return tuple(value)
    return value


def _recorded(name: str) -> Any:
    def call(*args: Any) -> Any:
        if not _TRACE:
            raise NVMLError_Uninitialized()
        _CONVERT(*(0 if isinstance(arg, _Handle) else arg for arg in args))
        answer = _CALLS[_RECORDER.call_key(name, *(_plain(a) for a in args))]
        if "raises" in answer:
            cls = globals().get(answer["raises"]) or _error_class(
                answer["raises"], answer["message"]
            )
            raise cls(answer["message"])
        return _shaped(answer["value"])

    call.__name__ = name
    return call


def nvmlInit() -> None:
    if not _TRACE:
        raise NVMLError_LibraryNotFound()


def nvmlShutdown() -> None:
    pass


def nvmlDeviceGetHandleByIndex(index: int) -> _Handle:
    _CONVERT(index)
    if not 0 <= index < _CALLS["nvmlDeviceGetCount()"]["value"]:
        raise NVMLError_InvalidArgument()
    return _Handle(index)


for _name in _RECORDER.CALLS:
    if _name not in _TRACE.get("missing", []):
        globals()[_name] = _recorded(_name)
