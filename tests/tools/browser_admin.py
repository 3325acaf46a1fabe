#!/usr/bin/env python3
"""The admin page in a real browser: headless Chromium, driven through the
DevTools protocol over --remote-debugging-pipe (Python's standard library
only).

It logs in with HTTP Basic credentials as a user would (the 401 challenge is
answered through Fetch.authRequired, not by setting a header), reads the
one-time password and the CA's SHA-256 thumbprint from the page, checks the
password's form and the page's one-time notice, keeps a screenshot, then
clicks the page's "Download an Apple configuration profile" button and waits
for the download.

    browser_admin.py --url URL --user USER --password=PASSWORD \\
        --screenshot OUT.png --download-dir DIR [--subject SUBJECT]

(--password=..., with '=': a generated password may begin with '-'.)

Prints on stdout, one per line: password=..., sha256=... (hex, no spaces),
form_subject=... (the form's prefilled subject), screenshot=PATH,
profile=PATH (the downloaded file). Exits 0 when all went
as expected, 1 with a line on stderr otherwise. Chromium is killed at the
end whatever happens; everything has to be done within --timeout seconds
(60 by default).
"""

import argparse
import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ONE_TIME_NOTICE = "This password can be used only once and will expire within"


class Failure(Exception):
    pass


class DevTools:
    """One DevTools connection over a pipe pair: commands are JSON written
    to Chromium's fd 3, answers and events come from its fd 4, each message
    ended by a NUL byte."""

    def __init__(self, write_fd, read_fd, deadline):
        self.write_fd = write_fd
        self.read_fd = read_fd
        self.deadline = deadline
        self.next_id = 1
        self.buf = b""
        self.replies = {}
        self.events = []
        self.handlers = {}  # method -> function(params, session_id)

    def send(self, method, params=None, session=None):
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        self.next_id += 1
        data = json.dumps(msg).encode() + b"\0"
        while data:
            n = os.write(self.write_fd, data)
            data = data[n:]
        return msg["id"]

    def _read_some(self, until):
        left = min(until, self.deadline) - time.monotonic()
        if left <= 0:
            return False
        ready, _, _ = select.select([self.read_fd], [], [], left)
        if not ready:
            return False
        chunk = os.read(self.read_fd, 1 << 16)
        if not chunk:
            raise Failure("Chromium closed the DevTools pipe (it exited?)")
        self.buf += chunk
        while b"\0" in self.buf:
            raw, self.buf = self.buf.split(b"\0", 1)
            msg = json.loads(raw)
            if "id" in msg:
                self.replies[msg["id"]] = msg
            elif "method" in msg:
                handler = self.handlers.get(msg["method"])
                if handler is not None:
                    # Handled at once (a paused request must go on even
                    # while a command waits for its answer), and kept.
                    handler(msg.get("params", {}), msg.get("sessionId"))
                self.events.append(msg)
        return True

    def call(self, method, params=None, session=None, timeout=15):
        """Sends a command and waits for its answer; its result."""
        cid = self.send(method, params, session)
        until = time.monotonic() + timeout
        while cid not in self.replies:
            if not self._read_some(until):
                raise Failure(f"no answer to {method} within {timeout} s")
        reply = self.replies.pop(cid)
        if "error" in reply:
            raise Failure(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def wait_event(self, method, match=lambda p: True, timeout=20):
        """The first event `method` (already received or to come) whose
        params satisfy match; it is taken off the list."""
        until = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method and match(ev.get("params", {})):
                    del self.events[i]
                    return ev.get("params", {})
            if not self._read_some(until):
                raise Failure(f"no {method} within {timeout} s")


def spawn_chromium(binary, profile_dir):
    """Chromium in a session of its own (so that its helper processes can
    be killed together), reading commands from fd 3, writing to fd 4.
    Returns (process, write_fd, read_fd)."""
    # Move our pipe ends well above 4 first, then put the child's ends on
    # 3 and 4 only around the fork: pass_fds keeps those open in the child.
    cmd_r, cmd_w = os.pipe()
    out_r, out_w = os.pipe()
    high = []
    for fd in (cmd_r, cmd_w, out_r, out_w):
        high.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(fd)
    cmd_r, cmd_w, out_r, out_w = high
    saved = {}
    for fd in (3, 4):
        try:
            saved[fd] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
        except OSError:
            saved[fd] = None
    args = [
        binary,
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-gpu",
        f"--user-data-dir={profile_dir}",
        "--remote-debugging-pipe",
        # Nothing but the server under test on 127.0.0.1 is contacted.
        "--no-proxy-server",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-client-side-phishing-detection",
        "--safebrowsing-disable-download-protection",
        "--disable-dev-shm-usage",
        "--password-store=basic",
        "--use-mock-keychain",
        "about:blank",
    ]
    try:
        os.dup2(cmd_r, 3)
        os.dup2(out_w, 4)
        proc = subprocess.Popen(
            args,
            pass_fds=(3, 4),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(profile_dir, "chromium.log"), "wb"),
            start_new_session=True,
        )
    finally:
        for fd in (3, 4):
            if saved[fd] is None:
                os.close(fd)
            else:
                os.dup2(saved[fd], fd)
                os.close(saved[fd])
    os.close(cmd_r)
    os.close(out_w)
    return proc, cmd_w, out_r


def kill_chromium(proc):
    if proc is None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    # Its helpers too: gone before we return, so none outlives the test.
    for _ in range(100):
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    print("browser_admin: Chromium's processes outlived SIGKILL", file=sys.stderr)


def drive(args, dt, download_dir):
    credentials_given = {}
    auth_failure = []

    def on_request_paused(params, session):
        dt.send("Fetch.continueRequest", {"requestId": params["requestId"]}, session)

    def on_auth_required(params, session):
        rid = params["requestId"]
        challenge = params.get("authChallenge", {})
        if (challenge.get("source") != "Server" or credentials_given.get(rid)
                or len(credentials_given) >= 5):
            # Asked again for the same request: the credentials were
            # refused. A proxy asking is nothing of ours either.
            auth_failure.append(f"{challenge.get('source')} authentication "
                                f"asked again for {params['request']['url']}")
            response = {"response": "CancelAuth"}
        else:
            credentials_given[rid] = True
            response = {
                "response": "ProvideCredentials",
                "username": args.user,
                "password": args.password,
            }
        dt.send("Fetch.continueWithAuth",
                {"requestId": rid, "authChallengeResponse": response}, session)

    dt.handlers["Fetch.requestPaused"] = on_request_paused
    dt.handlers["Fetch.authRequired"] = on_auth_required

    version = dt.call("Browser.getVersion")
    print(f"browser: {version.get('product')}", file=sys.stderr)
    target = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = dt.call("Target.attachToTarget",
                      {"targetId": target, "flatten": True})["sessionId"]
    dt.call("Page.enable", session=session)
    dt.call("Runtime.enable", session=session)
    dt.call("Emulation.setDeviceMetricsOverride",
            {"width": 900, "height": 1000, "deviceScaleFactor": 1,
             "mobile": False}, session=session)
    dt.call("Fetch.enable", {"handleAuthRequests": True,
                             "patterns": [{"urlPattern": "*"}]}, session=session)
    dt.call("Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": download_dir,
             "eventsEnabled": True})

    # Log in and load the page.
    dt.events.clear()
    nav = dt.call("Page.navigate", {"url": args.url}, session=session, timeout=20)
    if nav.get("errorText"):
        raise Failure(f"navigating to {args.url}: {nav['errorText']}")
    dt.wait_event("Page.loadEventFired", timeout=20)
    if auth_failure:
        raise Failure("; ".join(auth_failure))
    if not credentials_given:
        raise Failure("the page was shown without asking for credentials")

    js = r"""(() => {
        // The <B> of NDES's "The enrollment challenge password is:" line.
        let pw = null;
        for (const p of document.querySelectorAll("p"))
            if (p.textContent.trim().startsWith(
                    "The enrollment challenge password is:"))
                pw = p.querySelector("b");
        let sha256 = null;
        for (const row of document.querySelectorAll("p.fp")) {
            const alg = row.querySelector("span.alg");
            const code = row.querySelector("code");
            if (alg && code && alg.textContent.trim() === "SHA-256")
                sha256 = code.textContent;
        }
        const button = document.getElementById("profile");
        const subject = document.querySelector("input[name=subject]");
        return JSON.stringify({
            subject: subject ? subject.defaultValue : null,
            title: document.title,
            text: document.body ? document.body.innerText : "",
            password: pw ? pw.textContent : null,
            sha256: sha256,
            button: button ? button.textContent : null,
            form: button && button.form ? button.form.getAttribute("action") : null,
        });
    })()"""
    res = dt.call("Runtime.evaluate", {"expression": js, "returnByValue": True},
                  session=session)
    if "exceptionDetails" in res:
        raise Failure(f"reading the page: {res['exceptionDetails']}")
    page = json.loads(res["result"]["value"])
    if page["password"] is None:
        raise Failure(f"no password on the page ({page['title']!r}): "
                      f"{page['text'][:300]!r}")
    password = page["password"].strip()
    if not re.fullmatch(r"[0-9A-F]{32}", password):
        raise Failure(f"the password {password!r} is not 32 upper-case hex digits")
    if ONE_TIME_NOTICE not in page["text"]:
        raise Failure(f"'{ONE_TIME_NOTICE}' is not on the page")
    sha256 = re.sub(r"\s+", "", page["sha256"] or "")
    if not re.fullmatch(r"[0-9A-F]{64}", sha256):
        raise Failure(f"no SHA-256 thumbprint on the page: {page['sha256']!r}")
    if page["button"] is None or page["form"] != "profile.mobileconfig":
        raise Failure("no 'Download an Apple configuration profile' form "
                      f"posting to profile.mobileconfig (button {page['button']!r}, "
                      f"action {page['form']!r})")

    shot = dt.call("Page.captureScreenshot", {"format": "png"}, session=session)
    with open(args.screenshot, "wb") as f:
        f.write(base64.b64decode(shot["data"]))

    # Download the profile: the subject typed in, and a real mouse click.
    if args.subject is not None:
        res = dt.call("Runtime.evaluate", {
            "expression": "document.querySelector('input[name=subject]').value = "
                          + json.dumps(args.subject),
            "returnByValue": True}, session=session)
    res = dt.call("Runtime.evaluate", {
        "expression": """(() => {
            const b = document.getElementById("profile");
            b.scrollIntoView({block: "center"});
            const r = b.getBoundingClientRect();
            return JSON.stringify({x: r.left + r.width / 2, y: r.top + r.height / 2});
        })()""", "returnByValue": True}, session=session)
    where = json.loads(res["result"]["value"])
    for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
        dt.call("Input.dispatchMouseEvent",
                {"type": kind, "x": where["x"], "y": where["y"],
                 "button": "left" if kind != "mouseMoved" else "none",
                 "clickCount": 1 if kind != "mouseMoved" else 0},
                session=session)
    begin = dt.wait_event("Browser.downloadWillBegin", timeout=20)
    guid = begin["guid"]
    progress = dt.wait_event(
        "Browser.downloadProgress",
        lambda p: p.get("guid") == guid and p.get("state") in ("completed", "canceled"),
        timeout=20)
    if auth_failure:
        raise Failure("; ".join(auth_failure))
    if progress["state"] != "completed":
        raise Failure(f"the download of {begin.get('url')} was canceled")
    path = os.path.join(download_dir, begin["suggestedFilename"])
    if not os.path.isfile(path):
        raise Failure(f"the download completed but {path} is not there: "
                      f"{os.listdir(download_dir)}")
    print(f"download: {begin.get('url')} -> {path} ({progress.get('receivedBytes')} bytes)",
          file=sys.stderr)
    try:
        dt.call("Browser.close", timeout=5)
    except Failure:
        pass
    return password, sha256, page["subject"], path


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="the admin page")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--screenshot", required=True, help="PNG file to write")
    ap.add_argument("--download-dir", required=True)
    ap.add_argument("--subject", help="typed into the profile form")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    download_dir = os.path.abspath(args.download_dir)
    os.makedirs(download_dir, exist_ok=True)
    deadline = time.monotonic() + args.timeout

    # The hard limit, even if a read or Chromium itself hangs.
    def on_alarm(signum, frame):
        raise Failure(f"not done within {args.timeout:g} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout) + 1)

    profile_dir = tempfile.mkdtemp(prefix="scepd-chromium-")
    proc = None
    rc = 1
    try:
        proc, write_fd, read_fd = spawn_chromium(args.chromium, profile_dir)
        dt = DevTools(write_fd, read_fd, deadline)
        password, sha256, form_subject, path = drive(args, dt, download_dir)
        print(f"password={password}")
        print(f"sha256={sha256}")
        print(f"form_subject={form_subject}")
        print(f"screenshot={os.path.abspath(args.screenshot)}")
        print(f"profile={path}")
        rc = 0
    except (Failure, OSError, ValueError, KeyError) as e:
        print(f"browser_admin: {e}", file=sys.stderr)
        log = os.path.join(profile_dir, "chromium.log")
        if os.path.exists(log):
            with open(log, "rb") as f:
                tail = f.read()[-2000:].decode(errors="replace")
            if tail.strip():
                print(f"---- end of Chromium's stderr\n{tail}\n----", file=sys.stderr)
    finally:
        signal.alarm(0)
        kill_chromium(proc)
        shutil.rmtree(profile_dir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
