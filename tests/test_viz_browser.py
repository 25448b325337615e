"""The explorer in a real JupyterLab, driven by headless Chromium through the DevTools protocol (no network).

JupyterLab serves a notebook that builds a tiny model and opens the explorer; the browser runs the cell, types a
new sentence into the explorer's text box, and waits until the head view shows the new tokens and draws them.
Every wait polls for the state it needs, with a deadline, so a slow machine makes the test slower, not flaky.
It skips, saying why, where Chromium, JupyterLab or ipywidgets is missing.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEADLINE = 240  # seconds for the whole test: JupyterLab, a kernel and torch start slowly on a loaded 2-core machine


def chromium() -> str | None:
    for name in (os.environ.get("MINIBERT_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _missing() -> str | None:
    if chromium() is None:
        return "Chromium is not installed (apt-get install -y chromium, or set MINIBERT_CHROMIUM to a Chrome binary)"
    for module in ("jupyterlab", "ipywidgets", "jupyterlab_widgets", "ipykernel"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[course]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


class Chrome:
    """Headless Chromium spoken to over --remote-debugging-pipe: commands on its fd 3, answers on its fd 4."""

    def __init__(self, profile: Path, width: int = 1400, height: int = 1800) -> None:
        args = [
            "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-pipe",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", f"--window-size={width},{height}",
            # nothing outside this machine: every host fails to resolve, anything else goes to a dead proxy
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>;127.0.0.1", "about:blank",
        ]  # fmt: skip
        # our stdin becomes its fd 3 and our stdout its fd 4
        script = 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>/dev/null'
        self.proc = subprocess.Popen(["sh", "-c", script, chromium(), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
        self.answers: queue.Queue = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buf = b""
        while chunk := self.proc.stdout.read1(1 << 16):
            buf += chunk
            *messages, buf = buf.split(b"\0")
            for m in messages:
                self.answers.put(json.loads(m))
        self.answers.put(None)  # the browser has gone

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 60):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.proc.stdin.write(json.dumps(msg).encode() + b"\0")
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            try:
                answer = self.answers.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no answer to {method} in {timeout} s") from None
            if answer is None:
                raise RuntimeError("Chromium exited")
            if answer.get("id") == self.next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            if time.monotonic() > end:
                raise TimeoutError(f"no answer to {method} in {timeout} s")

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (OSError, RuntimeError, TimeoutError):
            pass  # it has gone already, or will be killed below
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


class Page:
    """One tab: navigate, evaluate JavaScript, wait for a condition, click, type, take screenshots."""

    def __init__(self, chrome: Chrome) -> None:
        self.chrome = chrome
        target = chrome.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = chrome.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def send(self, method: str, params: dict | None = None, timeout: float = 60):
        return self.chrome.call(method, params, self.session, timeout)

    def js(self, expression: str):
        out = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression[:80]}...: {out['exceptionDetails']}")
        return out["result"].get("value")

    def wait(self, expression: str, what: str, timeout: float, every: float = 0.5):
        """Poll until ``expression`` is truthy; its last value goes into the error message."""
        end = time.monotonic() + timeout
        value = None
        while time.monotonic() < end:
            value = self.js(expression)
            if value:
                return value
            time.sleep(every)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; last value {value!r}")

    def click(self, selector: str) -> None:
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                      " return [r.x + r.width / 2, r.y + r.height / 2]; })()")  # fmt: skip
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                   "clickCount": 1})  # fmt: skip

    def key(self, key: str, code: int, modifiers: int = 0, text: str = "") -> None:
        """Press and release a key (``text``: the character it types, which makes the keypress events)."""
        for kind in ("keyDown", "keyUp"):
            event = {"type": kind, "key": key, "code": key, "modifiers": modifiers, "windowsVirtualKeyCode": code}
            self.send("Input.dispatchKeyEvent", {**event, "text": text if kind == "keyDown" else ""})

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"]))
        return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def jupyter_lab(folder: Path, token: str):
    """JupyterLab serving ``folder``, its kernels importing this checkout; stopped (and waited for) on exit."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "JUPYTER_CONFIG_DIR": str(folder / ".config"),
        "JUPYTER_RUNTIME_DIR": str(folder / ".runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(folder / ".settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(folder / ".workspaces"),
        "MINIBERT_PROFILE": "smoke",
        "OMP_NUM_THREADS": "1",
    }
    notify = folder / ".settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notify.parent.mkdir(parents=True)
    notify.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))  # no news toasts, no requests
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}", "--allow-root"]  # fmt: skip
    log = (folder / ".jupyter.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5):
                    break
            except OSError as e:
                if proc.poll() is not None or time.monotonic() > end:
                    log_text = (folder / ".jupyter.log").read_text()[-3000:]
                    raise RuntimeError(f"JupyterLab did not start:\n{log_text}") from e
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


NOTEBOOK_CODE = """\
import torch
from pathlib import Path
from minibert import EncoderForPreTraining
from minibert.config import EncoderConfig
from minibert.text import BertTokenizer
from minibert.viz import explore

words = "the cat sat on mat . it was tired dog ran".split()
Path("vocab.txt").write_text("\\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\\n")
tok = BertTokenizer.from_vocab_file("vocab.txt")
torch.manual_seed(0)
model = EncoderForPreTraining(EncoderConfig(vocab_size=16, hidden_size=24, num_layers=2, num_heads=4,
                                            intermediate_size=32, max_position_embeddings=64)).eval()
explorer = explore({"tiny": (model, tok)}, text="the cat sat on the mat .")
explorer
"""


def head_view_state(page: Page) -> dict:
    """What the output shows: the explorer's text boxes and the head view's page (its iframe's srcdoc and box)."""
    return page.js("""(() => {
        const inputs = [...document.querySelectorAll('.jp-OutputArea .widget-text input')];
        const frame = document.querySelector('.jp-OutputArea iframe[title="head view"]');
        const r = frame ? frame.getBoundingClientRect() : null;
        return {inputs: inputs.length, srcdoc: frame ? frame.getAttribute('srcdoc') : '',
                box: r ? [r.x, r.y, r.width, r.height] : null};
    })()""")


def head_view_shows(word: str) -> str:
    """JavaScript: whether the head view's data holds the token ``word``."""
    return (
        "(() => { const f = document.querySelector('.jp-OutputArea iframe[title=\"head view\"]');"
        f" return !!f && f.getAttribute('srcdoc').includes({json.dumps(json.dumps(word))}); }})()"
    )


def coloured_pixels(png: Path, box: list[float]) -> int:
    """Saturated pixels inside ``box`` (x, y, width, height) of a screenshot: the head view's coloured lines."""
    import matplotlib.image

    rgb = matplotlib.image.imread(png)[..., :3]
    x, y, w, h = (int(v) for v in box)
    part = rgb[max(0, y) : y + h, max(0, x) : x + w]
    return int(((part.max(-1) - part.min(-1)) > 0.3).sum())


def run_first_cell(page: Page, left) -> None:
    """Click into the first cell and press shift+enter until JupyterLab has taken it (its prompt shows [*] or a
    number): a key pressed while the notebook is still settling can be lost."""
    for _ in range(5):
        page.click(".jp-NotebookPanel .jp-Cell .cm-content")
        page.key("Enter", 13, modifiers=8, text="\r")
        try:
            page.wait("/\\[(\\*|\\d+)\\]/.test(document.querySelector('.jp-Cell .jp-InputPrompt').textContent)",
                      "the cell to start", min(15, left()))  # fmt: skip
            return
        except TimeoutError:
            continue
    raise TimeoutError("JupyterLab did not run the cell")


def test_explorer_updates_in_jupyterlab_when_the_text_changes(tmp_path):
    import nbformat

    started = time.monotonic()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(NOTEBOOK_CODE)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, tmp_path / "explorer.ipynb")
    token = "minibert-test"
    with jupyter_lab(tmp_path, token) as url:
        chrome = Chrome(tmp_path / ".chrome")
        try:
            page = Page(chrome)
            page.send("Page.navigate", {"url": f"{url}/lab/tree/explorer.ipynb?token={token}"})
            left = lambda: DEADLINE - (time.monotonic() - started)  # noqa: E731
            page.wait("!!document.querySelector('.jp-NotebookPanel .jp-Cell .cm-content')", "the notebook", left())
            idle = "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /[|] Idle/.test(e.textContent))"
            page.wait(idle, "the kernel to be idle", left())
            run_first_cell(page, left)
            page.wait(head_view_shows("mat"), "the explorer's head view", left())
            before = head_view_state(page)
            assert before["inputs"] == 2 and '"tired"' not in before["srcdoc"]
            # type a new sentence and press Enter, as a reader would
            page.js("(() => { const i = document.querySelector('.jp-OutputArea .widget-text input');"
                    " i.focus(); i.select(); })()")  # fmt: skip
            page.send("Input.insertText", {"text": "it was tired ."})
            page.key("Enter", 13, text="\r")
            page.wait(head_view_shows("tired"), "the head view of the new sentence", left())
            after = head_view_state(page)
            assert '"cat"' not in after["srcdoc"].split("const params")[1]  # the old sentence is gone
            # the new page draws: its coloured lines appear on screen (polled: the iframe loads on its own)
            end = time.monotonic() + min(60, left())
            while True:
                box = head_view_state(page)["box"]
                shot = page.screenshot(tmp_path / "jupyterlab.png")
                if box and coloured_pixels(shot, box) > 300 or time.monotonic() > end:
                    break
                time.sleep(1)
            assert box and coloured_pixels(shot, box) > 300, "the head view drew nothing"
        finally:
            chrome.close()
