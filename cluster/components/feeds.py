"""The feeds as a component of the stack: one feed actor per planned venue connection."""

from __future__ import annotations

import logging

import msgspec
import ray
from ray import ObjectRef
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.demo import demo_config, simulated_config
from actors.feed import FeedActor, FeedReport
from actors.simulated.venue import SIMULATED_VENUE_ACTOR_NAME, SimulatedVenueReport
from actors.venues import adapter_for
from actors.venues.base import ConfigError, VenueConfig
from actors.venues.simulated import SimulatedAdapter
from core.errors import PlatformError
from core.health import Check
from core.named_actors import (
    RAY_NAMESPACE,
    STATUS_TIMEOUT_S,
    actor_report,
    feed_actor_name,
    feed_actors,
)
from core.settings import Settings

__all__ = ["FeedsComponent", "venue_configs"]

log = logging.getLogger(__name__)


def venue_configs(settings: Settings) -> list[VenueConfig]:
    """What ``finone up`` streams: the configured crypto venues, and Alpaca when keys are set;
    in demo mode only the bundled history, through the replay venue, and the simulated crypto
    exchange (its URL is the SimulatedVenue actor's, known once that runs)."""
    if settings.demo:
        return [demo_config(settings.capture_dir, settings.demo_pace_s), simulated_config(None)]
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


_Placement = str | NodeAffinitySchedulingStrategy


def _placed(config: VenueConfig, timeout_s: float) -> tuple[VenueConfig, _Placement]:
    """The configuration a venue's feed actors get, and where they run: spread over the nodes,
    so a node lost takes as few venue connections as possible; but the simulated venue listens
    on loopback, so its feed runs on the venue actor's node, at the URL the venue reports."""
    if config.venue != SimulatedAdapter.venue or config.ws_url is not None:
        return config, "SPREAD"
    try:
        venue = actor_report(SIMULATED_VENUE_ACTOR_NAME, SimulatedVenueReport, timeout_s)
    except ValueError:
        # No venue runs outside the demo: the feed actor reports the missing URL.
        return config, "SPREAD"
    except Exception as error:
        raise PlatformError(f"the simulated venue did not start: {error}") from None
    placement = NodeAffinitySchedulingStrategy(node_id=venue.node_id, soft=False)
    return msgspec.structs.replace(config, ws_url=venue.url), placement


def _connection_names(config: VenueConfig) -> list[str]:
    try:
        return [spec.name for spec in adapter_for(config.venue)(config).connections()]
    except (ConfigError, KeyError):
        # The actor reports why; one actor per venue is enough to carry that message.
        return [f"{config.venue}-0"]


class FeedsComponent:
    name = "feeds"

    def deploy(self, settings: Settings) -> None:
        redis_url = settings.required_redis_url
        for planned in venue_configs(settings):
            config, placement = _placed(planned, settings.startup_timeout_s)
            for connection in _connection_names(config):
                # Created without waiting: a venue that cannot be reached keeps retrying in its
                # actor and shows in status, and never holds up the rest of start-up.
                FeedActor.options(  # type: ignore[attr-defined]
                    name=feed_actor_name(connection),
                    namespace=RAY_NAMESPACE,
                    get_if_exists=True,
                    lifetime="detached",
                    scheduling_strategy=placement,
                ).remote(
                    config,
                    connection,
                    redis_url,
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
                asked: ObjectRef[FeedReport] = actor.status.remote()
                report = ray.get(asked, timeout=STATUS_TIMEOUT_S)
            except Exception as error:  # a dead or stuck actor is a status line, not a crash
                checks.append(
                    Check(name=f"feed:{connection}", ok=False, detail=f"no answer: {error}")
                )
                continue
            checks.append(
                Check(
                    name=f"feed:{connection}", ok=report.state == "live", detail=_describe(report)
                )
            )
        # Said only when no Alpaca connection runs (a demo replays through the Alpaca adapter).
        if not any(name.startswith("alpaca-") for name in actors):
            checks.append(
                Check(
                    name="feed:alpaca",
                    ok=True,
                    detail=(
                        "off: set FINONE_ALPACA_KEY_ID and FINONE_ALPACA_SECRET_KEY "
                        "to stream US stocks"
                    ),
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


def _describe(report: FeedReport) -> str:
    if report.state == "failed":
        return f"failed: {report.detail}"
    age = report.last_message_age_s
    parts = [
        report.state,
        f"{report.messages_per_s} msg/s",
        f"{report.events_per_s} ev/s",
        f"last message {age:.1f} s ago" if age is not None else "no message yet",
        f"{report.gaps} gaps",
        f"{report.reconnects} reconnects",
        f"{report.rotations} rotations without a gap",
    ]
    if report.problems:
        parts.append(
            ", ".join(f"{kind} {count}" for kind, count in sorted(report.problems.items()))
        )
    return "; ".join(parts)
