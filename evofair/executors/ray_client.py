"""Talking to a Ray cluster's Jobs API (the dashboard's HTTP address): the client, job status and logs.

The Jobs SDK waits forever on an address that does not answer and raises library exceptions; here
every request has a timeout (`EVOFAIR_HTTP_TIMEOUT_S`), the address is probed before the SDK is
imported, and every failure is a one-line `UserError` naming the address or the job.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from urllib.parse import urlsplit

from evofair.errors import UserError

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 20.0  # per HTTP answer, so a silent endpoint fails within 30 s; EVOFAIR_HTTP_TIMEOUT_S overrides
FOLLOW_POLL_S = 2.0


# -- connecting -------------------------------------------------------------------------------


def dashboard_url(address: str | None) -> str:
    """`http://HOST:PORT` of the cluster's dashboard (the Jobs API), from --address or the env."""
    address = address or os.environ.get("RAY_API_SERVER_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address:
        raise UserError(
            "--address: expected the Ray dashboard address, e.g. http://HEAD:8265 (or set RAY_API_SERVER_ADDRESS)"
        )
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"--address {address}: expected http://HOST:PORT of the Ray dashboard (port 8265 "
            "by default), not a GCS or ray:// address"
        )
    return address.rstrip("/")


def _probe(url: str) -> None:
    """Fail fast and in one line: the SDK itself waits minutes on an unroutable host."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise UserError(
            f"--address {url}: cannot connect ({reason}); is the Ray head up, and is this "
            "its dashboard port (8265 by default)?"
        ) from None


def http_timeout() -> tuple[float, float]:
    """(connect, read) seconds for every HTTP request to the Jobs API."""
    raw = os.environ.get("EVOFAIR_HTTP_TIMEOUT_S")
    try:
        read = float(raw) if raw else READ_TIMEOUT_S
    except ValueError:
        raise UserError(f"EVOFAIR_HTTP_TIMEOUT_S={raw}: expected seconds, e.g. 20") from None
    if not 0 < read < float("inf"):
        raise UserError(f"EVOFAIR_HTTP_TIMEOUT_S={raw}: expected a number of seconds > 0")
    return min(CONNECT_TIMEOUT_S, read), read


@contextlib.contextmanager
def ray_errors(url: str, job: str | None = None):
    """Turn the Jobs SDK's exceptions into one-line `UserError`s naming the address or job."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except requests.exceptions.Timeout:
        raise UserError(
            f"--address {url}: no answer within {http_timeout()[1]:g} s (something accepts "
            "connections there but does not answer as the Ray Jobs API; EVOFAIR_HTTP_TIMEOUT_S "
            "sets the wait)"
        ) from None
    except (ValueError, KeyError, TypeError) as exc:  # a 200 whose body is not the API's JSON
        raise UserError(
            f"--address {url}: the answer is not the Ray Jobs API's ({exc.__class__.__name__}: "
            f"{one_line(exc, 120)}); is this the dashboard's address (port 8265 by default)?"
        ) from None
    except requests.exceptions.RequestException as exc:
        raise UserError(f"--address {url}: cannot reach the Ray Jobs API ({one_line(exc)})") from None
    except AuthenticationError:
        raise UserError(
            f"--address {url}: the cluster refused this client's credentials; with token "
            "authentication set RAY_AUTH_MODE=token and give the cluster's token in "
            "~/.ray/auth_token or RAY_AUTH_TOKEN (or run every node and client with "
            "RAY_AUTH_MODE=disabled on a trusted network)"
        ) from None
    except ConnectionError as exc:
        raise UserError(f"--address {url}: cannot reach the Ray Jobs API ({one_line(exc)})") from None
    except RuntimeError as exc:
        text = one_line(exc)
        if "Version check returned 404" in text:
            raise UserError(
                f"--address {url}: something answers there, but not the Ray Jobs API (HTTP 404 "
                "on /api/version); give the dashboard's address (port 8265 by default)"
            ) from None
        if job is not None and "404" in text:
            raise UserError(f"job {job}: no such job on {url}") from None
        raise UserError(f"--address {url}: {text}") from None


def one_line(exc: BaseException | str, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"


@contextlib.contextmanager
def _address_is_ours():
    """The SDK lets RAY_ADDRESS / RAY_API_SERVER_ADDRESS override the address it is given;
    --address must win, so hide them while the client is built."""
    saved = {k: os.environ.pop(k) for k in ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def client(address: str | None):
    url = dashboard_url(address)
    timeout = http_timeout()
    _probe(url)  # before importing ray (seconds), so a wrong address fails at once
    from ray.job_submission import JobSubmissionClient

    class TimedClient(JobSubmissionClient):
        """The SDK sends every request without a timeout: one that never answers would hang."""

        def _do_request(self, method, endpoint, **kwargs):
            kwargs.setdefault("timeout", timeout)
            return super()._do_request(method, endpoint, **kwargs)

    with ray_errors(url), _address_is_ours():
        return url, TimedClient(url)


def wait_terminal(jobs, job: str, timeout: float, poll_s: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        info = jobs.get_job_info(job)
        if str(getattr(info.status, "value", info.status)) in TERMINAL or time.monotonic() > deadline:
            return info
        time.sleep(poll_s)


# -- status / logs ----------------------------------------------------------------------------


def job_info(address: str | None, job: str):
    url, jobs = client(address)
    with ray_errors(url, job):
        return jobs.get_job_info(job)


def describe(info) -> str:
    status = str(getattr(info.status, "value", info.status))
    out = (info.metadata or {}).get("evofair_out")
    message = " ".join((info.message or "").split())
    return (
        f"{info.submission_id or info.job_id}: {status}"
        + (f" ({message})" if message else "")
        + (f"; run directory {out}" if out else "")
    )


def wait(address: str | None, job: str, timeout: float | None = None, poll_s: float = 1.0):
    """Poll until the job is SUCCEEDED, FAILED or STOPPED (or `timeout` seconds pass)."""
    url, jobs = client(address)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with ray_errors(url, job):
            info = jobs.get_job_info(job)
        if str(getattr(info.status, "value", info.status)) in TERMINAL:
            return info
        if deadline is not None and time.monotonic() > deadline:
            return info
        time.sleep(poll_s)


def logs(address: str | None, job: str, follow: bool = False, stream=None, poll_s: float = FOLLOW_POLL_S) -> None:
    stream = stream or sys.stdout
    url, jobs = client(address)
    shown = 0
    while True:
        # Polled over plain HTTP rather than the SDK's websocket tail, which has no timeout: status
        # first, so logs fetched after a terminal status are complete.
        with ray_errors(url, job):
            done = not follow or str(getattr(jobs.get_job_info(job).status, "value", "")) in TERMINAL
            text = jobs.get_job_logs(job)
        stream.write(text[shown:])
        stream.flush()
        shown = len(text)
        if done:
            return
        time.sleep(poll_s)
