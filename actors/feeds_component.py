"""The feeds as a component of the stack: one feed actor per planned venue connection."""

from __future__ import annotations

import logging
from typing import Any

import ray

from actors.demo import demo_config
from actors.feed import FeedActor, feed_actor_name
from actors.venues import adapter_for
from actors.venues.base import ConfigError, VenueConfig
from cluster.components import RAY_NAMESPACE
from cluster.health import Check
from cluster.settings import Settings

__all__ = ["FeedsComponent", "venue_configs", "feed_actors"]

log = logging.getLogger(__name__)
STATUS_TIMEOUT_S = 5.0


def venue_configs(settings: Settings) -> list[VenueConfig]:
    """What ``finone up`` streams: the configured crypto venues, and Alpaca when keys are set;
    in demo mode only the bundled history, through the replay venue."""
    if settings.demo:
        return [demo_config(settings.capture_dir, settings.demo_pace_s)]
    configs = [
        VenueConfig(
            venue=venue,
            symbols=list(symbols),
            channels=list(settings.feed_channels),
            ws_url=settings.feed_urls.get(venue),
        )
        for venue, symbols in settings.feeds.items()
        if symbols
    ]
    if settings.alpaca_key_id and settings.alpaca_secret_key:
        configs.append(
            VenueConfig(
                venue="alpaca",
                symbols=list(settings.alpaca_symbols),
                channels=["trades", "quotes", "bars"],
                api_key=settings.alpaca_key_id.get_secret_value(),
                api_secret=settings.alpaca_secret_key.get_secret_value(),
                options={"feed": settings.alpaca_feed},
                ws_url=settings.feed_urls.get("alpaca"),
            )
        )
    return configs


def _connection_names(config: VenueConfig) -> list[str]:
    try:
        return [spec.name for spec in adapter_for(config.venue)(config).connections()]
    except (ConfigError, KeyError):
        # The actor reports why; one actor per venue is enough to carry that message.
        return [f"{config.venue}-0"]


def feed_actors() -> dict[str, Any]:
    """Handles of the running feed actors, by connection name."""
    prefix = feed_actor_name("")
    # Asked across namespaces: Serve replicas, which also ask, run in Serve's own namespace.
    return {
        entry["name"].removeprefix(prefix): ray.get_actor(entry["name"], namespace=RAY_NAMESPACE)
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == RAY_NAMESPACE and entry["name"].startswith(prefix)
    }


class FeedsComponent:
    name = "feeds"

    def deploy(self, settings: Settings) -> None:
        assert settings.redis_url is not None
        for config in venue_configs(settings):
            for connection in _connection_names(config):
                # Created without waiting: a venue that cannot be reached keeps retrying in its
                # actor and shows in status, and never holds up the rest of start-up.
                # Spread over the nodes: a node lost takes as few venue connections as possible.
                FeedActor.options(  # type: ignore[attr-defined]
                    name=feed_actor_name(connection), namespace=RAY_NAMESPACE, get_if_exists=True,
                    lifetime="detached", scheduling_strategy="SPREAD"
                ).remote(
                    config,
                    connection,
                    settings.redis_url,
                    stream_maxlen=settings.stream_maxlen,
                    capture_dir=str(settings.capture_dir),
                    record=settings.record_feeds,
                )
                log.info("feed %s deployed", connection)

    def health(self, settings: Settings) -> list[Check]:
        checks = []
        actors = feed_actors()
        for connection, actor in sorted(actors.items()):
            try:
                status = ray.get(actor.status.remote(), timeout=STATUS_TIMEOUT_S)
            except Exception as error:  # a dead or stuck actor is a status line, not a crash
                checks.append(Check(name=f"feed:{connection}", ok=False, detail=f"no answer: {error}"))
                continue
            checks.append(
                Check(name=f"feed:{connection}", ok=status["state"] == "live", detail=_describe(status))
            )
        # Said only when no Alpaca connection runs (a demo replays through the Alpaca adapter).
        if not any(name.startswith("alpaca-") for name in actors):
            checks.append(
                Check(
                    name="feed:alpaca",
                    ok=True,
                    detail="off: set FINONE_ALPACA_KEY_ID and FINONE_ALPACA_SECRET_KEY to stream US stocks",
                )
            )
        return checks

    def stop(self, settings: Settings) -> None:
        actors = feed_actors()
        refs = [actor.shutdown.remote() for actor in actors.values()]
        try:
            ray.get(refs, timeout=15)
        except Exception as error:
            log.warning("feeds did not all shut down cleanly: %s", error)
        for actor in actors.values():
            ray.kill(actor, no_restart=True)

    def urls(self, settings: Settings) -> dict[str, str]:
        return {}


def _describe(status: dict[str, Any]) -> str:
    if status["state"] == "failed":
        return f"failed: {status['detail']}"
    age = status.get("last_message_age_s")
    parts = [
        status["state"],
        f"{status['messages_per_s']} msg/s",
        f"{status['events_per_s']} ev/s",
        f"last message {age:.1f} s ago" if age is not None else "no message yet",
        f"{status['gaps']} gaps",
        f"{status['reconnects']} reconnects",
    ]
    problems = status.get("problems") or {}
    if problems:
        parts.append(", ".join(f"{kind} {count}" for kind, count in sorted(problems.items())))
    return "; ".join(parts)
