"""Import TensorFlow without its C++ start-up notices landing in notebook outputs.

TensorFlow's native code writes lines such as ``I0000 ... cudart_stub.cc:31] Could
not find cuda drivers`` straight to file descriptor 2 while it loads, before
``TF_CPP_MIN_LOG_LEVEL`` can silence them, and Jupyter copies that descriptor into
the cell's output. During the import we point descriptor 2 at a temporary file,
then pass on every line that is not one of those notices, so real errors still
show.

Used by ``import woofhelpers``; taught nowhere: it keeps chapter outputs clean (see CONTRIBUTING.md).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

_NOTICE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} [\d:.]+\s+\d+ \S+\.cc:\d+\] .*"
    r"|\d{4}-\d\d-\d\d [\d:.]+: [IW] tensorflow/.*)$"
)


def import_tensorflow() -> ModuleType:
    """Import and return ``tensorflow`` with its start-up notices filtered out."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line and not _NOTICE.match(line):
                    print(line, file=sys.stderr)
    return tensorflow
