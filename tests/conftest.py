from pathlib import Path

import pytest

SHARED_IMAGES = Path(__file__).resolve().parents[1] / ".." / "shared" / "images"


@pytest.fixture(scope="session")
def images() -> Path:
    """The shared test images (../shared/images beside the project)."""
    if not SHARED_IMAGES.is_dir():
        pytest.fail(f"test images not found at {SHARED_IMAGES.resolve()}")
    return SHARED_IMAGES.resolve()
