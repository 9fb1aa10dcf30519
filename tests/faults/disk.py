"""A small ext4 file system on a loop device, under the history and the spool, for the two
faults a disk gives a running daemon. It fills up (a file takes all the space left, root's
reserve included, until it is deleted). And it goes read-only as a failing disk does: an I/O
error makes the kernel remount it read-only (errors=remount-ro) with the daemon's files still
open, which no chmod or remount can do to a file system that has writers; the operator's
repair is what a real one does: stop the daemon, unmount, fsck, mount, start it."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path


def why_not() -> str | None:
    """Why no such disk can be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (mount)"
    if not Path("/dev/loop-control").exists():
        return "needs loop devices (/dev/loop-control)"
    for tool in ("mkfs.ext4", "e2fsck", "losetup"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install e2fsprogs mount)"
    return None


class Ext4Disk:
    def __init__(self, tmp: Path, size_mb: int = 64):
        self.image = tmp / "disk.img"
        self.path = tmp / "disk"
        self.path.mkdir()
        with open(self.image, "wb") as f:
            f.truncate(size_mb << 20)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(self.image)], check=True)
        self.mount()

    def mount(self) -> None:
        subprocess.run(["mount", "-o", "loop,errors=remount-ro", str(self.image),
                        str(self.path)], check=True)

    def device(self) -> str:
        return os.path.basename(subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", str(self.path)], check=True,
            capture_output=True, text=True).stdout.strip())

    def fail(self) -> None:
        """An error as a failing disk gives: ext4 turns read-only at once, files open or not."""
        Path(f"/sys/fs/ext4/{self.device()}/trigger_fs_error").write_text("router fault\n")

    def fill(self) -> Path:
        """A file holding all the space left; delete it and the space returns."""
        filler = self.path / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        return filler

    def repair(self) -> None:
        """With nothing of it open any more (the daemon stopped)."""
        subprocess.run(["umount", str(self.path)], check=True)
        r = subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, text=True)
        assert r.returncode in (0, 1), r.stdout + r.stderr     # 1: errors corrected
        self.mount()

    def remove(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)])
        self.image.unlink(missing_ok=True)
