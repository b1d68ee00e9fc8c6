"""An ImageNet-layout folder is read as it is: hidden entries are not classes or images, folder links are not
followed, an unreadable image is named; a rank stops when torchrun's agent dies."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.imagenet.data import load_folder


def write_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        pixels = np.full((8, 8, 3), 40 * index % 256, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image_{index}.png")


@pytest.fixture
def imagenet(tmp_path) -> Path:
    for split, count in (("train", 3), ("val", 2)):
        for name in ("cat", "dog"):
            write_images(tmp_path / split / name, count)
    return tmp_path


def test_hidden_folders_and_files_are_not_classes_or_images(imagenet):
    write_images(imagenet / "train" / ".ipynb_checkpoints", 2)  # planted: ImageFolder calls it a class
    write_images(imagenet / "val" / ".ipynb_checkpoints", 2)
    write_images(imagenet / "train" / "cat" / ".thumbnails", 4)
    (imagenet / "train" / "dog" / ".hidden.png").write_bytes((imagenet / "train" / "dog" / "image_0.png").read_bytes())
    data = load_folder(imagenet, image_size=8)
    assert data.classes == ["cat", "dog"] and len(data.train) == 6 and len(data.val) == 4


def test_a_link_loop_or_a_link_out_of_the_root_adds_no_image(imagenet, tmp_path_factory):
    os.symlink(imagenet / "train" / "cat", imagenet / "train" / "cat" / "loop")  # planted: a loop
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    write_images(elsewhere, 5)
    os.symlink(elsewhere, imagenet / "train" / "dog" / "more")
    data = load_folder(imagenet, image_size=8)
    assert len(data.train) == 6
    assert {Path(path).parent.name for path in data.train.paths} == {"cat", "dog"}


def test_an_image_that_cannot_be_read_is_named_with_its_path(imagenet):
    broken = imagenet / "train" / "dog" / "image_1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated
    data = load_folder(imagenet, image_size=8)
    index = data.train.paths.index(str(broken))
    with pytest.raises(OSError, match=f"cannot read image {broken}"):
        data.train[index]


RANK = """
import sys, time
from harness.imagenet.distributed import stop_with_parent
assert stop_with_parent()
print("ready", flush=True)
time.sleep(60)
"""

AGENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=sys.stdout)
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_rank_stops_when_its_agent_is_killed():
    agent = subprocess.Popen([sys.executable, "-c", AGENT, RANK], stdout=subprocess.PIPE, text=True)
    rank_pid = int(agent.stdout.readline())
    assert agent.stdout.readline().strip() == "ready"
    agent.send_signal(signal.SIGKILL)  # as a SIGKILL of torchrun's agent
    agent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(rank_pid, 0)
        except ProcessLookupError:
            return  # gone
        if _zombie(rank_pid):
            return
        time.sleep(0.05)
    os.kill(rank_pid, signal.SIGKILL)
    pytest.fail("the rank trained on after its agent was killed")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False
