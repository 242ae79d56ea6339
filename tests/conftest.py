import signal
from pathlib import Path

import pytest

SHARED_IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"


@pytest.fixture(scope="session")
def images() -> Path:
    """The shared test images (../shared/images beside the project)."""
    if not SHARED_IMAGES.is_dir():
        pytest.fail(f"test images not found at {SHARED_IMAGES.resolve()}")
    return SHARED_IMAGES.resolve()


@pytest.fixture(autouse=True)
def signals_as_in_a_terminal():
    """Ctrl-C and a hang-up as a terminal delivers them, in the tests and the processes they start. A
    suite started in the background (nohup, or ``&`` in a script) inherits them ignored, and impasto
    leaves an ignored signal ignored, as it should; its tests of stopping by a signal need them live."""
    live = {signal.SIGINT: signal.default_int_handler}
    if hasattr(signal, "SIGHUP"):  # not on Windows
        live[signal.SIGHUP] = signal.SIG_DFL
    before = {signum: signal.signal(signum, handler) for signum, handler in live.items()}
    yield
    for signum, handler in before.items():
        if handler is not None:  # None: set outside Python, and not to be put back from here
            signal.signal(signum, handler)
