"""The per-run scratch directory: disk images really written, lock, removal."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import qemu_reachable_dir

from vbench.errors import HostError
from vbench.virt.guests import RunScratch


@pytest.fixture
def root() -> Iterator[Path]:
    # As root, RunScratch insists QEMU (another user) can traverse to it.
    with qemu_reachable_dir("vbench-test-scratch-") as path:
        yield path


def test_disk_image_holds_written_data_not_unwritten_extents(root: Path) -> None:
    with RunScratch("run-1", root) as scratch:
        disk = scratch.make_disk("r0-fv.raw", 8)
        assert disk.stat().st_size == 8 << 20
        assert disk.stat().st_blocks * 512 >= 8 << 20  # allocated, not sparse
        # A fallocated image reads back as zeros without device I/O: every block must hold data.
        with disk.open("rb") as f:
            for offset in range(0, 8 << 20, 1 << 20):
                f.seek(offset + 4096)
                block = f.read(4096)
                assert block.count(0) < 64, f"block at {offset + 4096} is (nearly) all zeros"


def test_disk_image_name_taken_is_a_clear_error(root: Path) -> None:
    with RunScratch("run-2", root) as scratch:
        scratch.make_disk("d.raw", 1)
        with pytest.raises(HostError, match="cannot create the disk image"):
            scratch.make_disk("d.raw", 1)


def test_scratch_is_locked_while_it_lives_and_removed_after(root: Path) -> None:
    with RunScratch("run-3", root) as scratch:
        scratch.make_disk("d.raw", 1)
        with pytest.raises(HostError), RunScratch("run-3", root):
            pass
        assert (root / "run-3" / "d.raw").exists()
    assert not (root / "run-3").exists()
    assert os.listdir(root) == []
