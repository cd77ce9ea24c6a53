"""The live pipeline: loaded once in the background, then replaced when a new build goes live.

`index/current` is the build being served. The server looks at it every
`RAGBOT_RELOAD_INTERVAL_S` seconds, and at once on SIGHUP. A new build is loaded and checked
beside the old one, off the event loop; only a pipeline that loads is swapped in. Requests in
flight keep the pipeline they started with and finish on the old index.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import anyio
from fastapi import FastAPI

from ragbot import metrics
from ragbot.config import Settings
from ragbot.errors import RagbotError
from ragbot.pipeline import Pipeline

log = logging.getLogger("ragbot.api")


def current_build(settings: Settings) -> str | None:
    """The name of the build index/current points at, or None when there is none."""
    try:
        return Path(os.readlink(settings.index_dir / "current")).name
    except OSError:
        return None


async def serve_live(app: FastAPI, settings: Settings) -> None:
    """Load the pipeline (unless one was handed in), then keep it on the current build until
    cancelled."""
    if app.state.pipeline is None:
        await _load_first(app, settings)
    wake = anyio.Event()
    hup: list[anyio.Event] = [wake]
    _on_sighup(hup)
    while True:
        with anyio.move_on_after(settings.reload_interval_s or None):
            await hup[0].wait()
        hup[0] = anyio.Event()
        await reload_if_changed(app, settings)


async def reload_if_changed(app: FastAPI, settings: Settings) -> bool:
    """Load and swap in index/current if it is not the build being served; True if swapped."""
    live: Pipeline | None = app.state.pipeline
    build = current_build(settings)
    if build is None or (live is not None and live.index.build_id == build):
        return False
    if build == app.state.refused_build:
        return False  # refused once; a new build gets a new name
    started = time.perf_counter()
    try:
        fresh = await anyio.to_thread.run_sync(
            lambda: Pipeline.load(settings, build_if_needed=False), abandon_on_cancel=True
        )
    except Exception as exc:
        message = exc.message if isinstance(exc, RagbotError) else str(exc)
        app.state.refused_build = build
        log.error(
            "new index build refused; serving the previous one",
            extra={"build": build, "error": message},
        )
        return False
    app.state.pipeline, app.state.load_error, app.state.refused_build = fresh, None, None
    metrics.index_build_live(fresh.index.build_id, live.index.build_id if live else None)
    log.info(
        "index build live",
        extra={"build": build, "seconds": round(time.perf_counter() - started, 2)},
    )
    if live is not None:
        live.close()  # its encoder thread stops; requests still on it finish inline
    return True


async def _load_first(app: FastAPI, settings: Settings) -> None:
    started = time.perf_counter()
    try:
        pipeline = await anyio.to_thread.run_sync(
            lambda: Pipeline.load(settings, build_if_needed=settings.auto_build),
            abandon_on_cancel=True,
        )
    except Exception as exc:
        message = (
            exc.message if isinstance(exc, RagbotError) else f"could not load the pipeline: {exc}"
        )
        app.state.load_error = message  # logged in full; clients get a message without paths
        log.error("pipeline not loaded", extra={"error": message})
        return
    app.state.pipeline = pipeline
    metrics.index_build_live(pipeline.index.build_id)
    log.info("ready", extra={"seconds": round(time.perf_counter() - started, 2)})


def _on_sighup(hup: list[anyio.Event]) -> None:
    """SIGHUP wakes the watcher at once (only the main thread's loop can take signals)."""
    import asyncio

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: hup[0].set())
    except (RuntimeError, ValueError, NotImplementedError):
        log.debug("no SIGHUP handler outside the main thread")
