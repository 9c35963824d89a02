"""Which Python objects the pickles of a weight file would import: for the message that names them when a file
holds more than tensors (PyTorch's safe loader is the guard; this only explains its refusal)."""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path
from typing import IO

ZIP_MAGIC = b"PK\x03\x04"
PICKLE_PROTO = 0x80  # the PROTO opcode that starts every pickle of protocol 2 or later (all torch.save files)
_MAX_PICKLE_SCAN = 64 << 20  # a pickle of a state dict is small; the tensors' bytes live elsewhere
# Globals that a file of tensors may name besides torch's own (torch's loader decides about the torch.* ones).
_TENSOR_FILE_GLOBALS = frozenset({"collections.OrderedDict", "_codecs.encode", "builtins.set", "builtins.frozenset",
                                  "builtins.bytearray", "builtins.slice", "builtins.complex"})
_STRING_OPCODES = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
                             "BINUNICODE8"})


def code_calling_globals(path: Path, head: bytes) -> list[str]:
    """The Python objects (``module.name``) a weight file's pickles would import that a file of tensors never
    needs: each one could run code when unpickled. Best effort; torch.load(weights_only=True) is the guard."""
    try:
        if head.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(path) as archive:
                member = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
                if member is None or archive.getinfo(member).file_size > _MAX_PICKLE_SCAN:
                    return []
                names = _pickle_globals(io.BytesIO(archive.read(member)), pickles=1)
        elif head[0] == PICKLE_PROTO:
            with open(path, "rb") as f:  # torch's older format: several pickles, then the raw tensor bytes
                names = _pickle_globals(f, pickles=5)
        else:
            return []
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return []
    unsafe = [n for n in names if not (n.startswith("torch.") or n in _TENSOR_FILE_GLOBALS)]
    return list(dict.fromkeys(unsafe))


def _pickle_globals(stream: IO[bytes], *, pickles: int) -> list[str]:
    """``module.name`` of every GLOBAL, INST and STACK_GLOBAL in the first ``pickles`` pickles of ``stream``."""
    names: list[str] = []
    for _ in range(pickles):
        start = stream.read(1)
        if start != bytes([PICKLE_PROTO]):
            break
        stream.seek(-1, io.SEEK_CUR)
        strings: list[str] = []  # recent string values, for STACK_GLOBAL's two operands
        memo: dict[int, str | None] = {}
        last: str | None = None  # the string on top of the stack, if the last push was one
        try:
            for opcode, arg, _ in pickletools.genops(stream):
                name = opcode.name
                if name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif name == "STACK_GLOBAL":
                    names.append(".".join(strings[-2:]) if len(strings) >= 2 else "an object named at run time")
                elif name.startswith("EXT"):
                    names.append(f"extension object {arg}")
                if name in _STRING_OPCODES and isinstance(arg, str):
                    last = arg
                    strings.append(arg)
                elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                    last = memo.get(arg)
                    if last is not None:
                        strings.append(last)
                elif name == "MEMOIZE":
                    memo[len(memo)] = last
                elif name in ("PUT", "BINPUT", "LONG_BINPUT") and isinstance(arg, int):
                    memo[arg] = last
                else:
                    last = None
        except ValueError:
            break  # not a (complete) pickle: what was seen so far counts
    return names
