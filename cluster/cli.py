"""The ``finone`` command: bring the platform up and down, and see how it is doing."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import click
import msgspec
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cluster.processes import kill_stack_processes
from cluster.state import read_state, remove_state
from core.errors import PlatformError
from core.health import Check
from core.intervals import INTERVALS
from core.settings import Settings

if TYPE_CHECKING:
    from training.evaluation import Step

__all__ = ["main"]

log = logging.getLogger("finone")
stderr = Console(stderr=True)
DOWN_TIMEOUT_S = 90.0


def _load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        raise PlatformError(f"invalid setting {where}: {problem['msg']}") from None


def _settings_or_exit() -> Settings:
    try:
        return _load_settings()
    except PlatformError as error:
        _fail(error)


def _fail(error: PlatformError) -> NoReturn:
    click.echo(f"finone: error: {error}", err=True)
    sys.exit(1)


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Finance One Stop: real-time market data, forecasts and a live feed on Ray."""


@main.command()
@click.option(
    "--demo",
    is_flag=True,
    help="Instead of live venues: bundled stock history (loaded, and replayed on an accelerated "
    "clock) and a simulated crypto market; the first forecasters train at once.",
)
def up(demo: bool) -> None:
    """Start the whole platform and keep it in the foreground until Ctrl-C."""
    from cluster.stack import LocalStack

    settings = _settings_or_exit()
    if demo:
        settings = settings.model_copy(update={"demo": True})
    _configure_logging()
    # Installed explicitly: a shell starting us in the background would leave SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    stack = LocalStack(settings)
    exit_code = 0
    started = time.monotonic()
    try:
        stack.start()
        _print_urls(stack.urls(), time.monotonic() - started)
        stack.supervise()
    except KeyboardInterrupt:
        log.info("stopping the platform")
    except PlatformError as error:
        click.echo(f"finone: error: {error}", err=True)
        exit_code = 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and orphan servers.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
    sys.exit(exit_code)


def _print_urls(urls: dict[str, str], elapsed_s: float) -> None:
    width = max(len(label) for label in urls)
    lines = [f"Finance One Stop is up (ready in {elapsed_s:.1f} s)", ""]
    lines += [f"  {label.ljust(width)}  {url}" for label, url in urls.items()]
    lines += ["", "Press Ctrl-C to stop."]
    click.echo("\n".join(lines), err=False)
    sys.stdout.flush()


@main.command()
def down() -> None:
    """Stop the platform started by `finone up` on this data directory."""
    from cluster.status import supervisor_is_running

    settings = _settings_or_exit()
    state = read_state(settings.data_path)
    if state is None:
        click.echo(f"finone is not running on {settings.data_path}")
        return
    if supervisor_is_running(state.supervisor_pid):
        os.kill(state.supervisor_pid, signal.SIGTERM)
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while supervisor_is_running(state.supervisor_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if supervisor_is_running(state.supervisor_pid):
            os.kill(state.supervisor_pid, signal.SIGKILL)
    leftovers = kill_stack_processes(state.stack_id, state.children)
    if leftovers:
        click.echo(f"stopped {len(leftovers)} processes the supervisor left behind", err=True)
    remove_state(settings.data_path)
    click.echo("finone stopped")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def status(as_json: bool) -> None:
    """Report the health of every component; exits 1 when anything is unhealthy."""
    from cluster.status import collect_status

    try:
        checks = collect_status(_load_settings())
    except PlatformError as error:
        if as_json:
            click.echo(
                msgspec.json.encode({"running": False, "healthy": False, "error": str(error)})
            )
            sys.exit(1)
        _fail(error)
    healthy = all(check.ok for check in checks)
    if as_json:
        report = {"running": True, "healthy": healthy, "components": checks}
        click.echo(msgspec.json.encode(report))
    else:
        _print_table(checks)
    sys.exit(0 if healthy else 1)


def _print_table(checks: list[Check]) -> None:
    table = Table(title="Finance One Stop")
    table.add_column("component")
    table.add_column("state")
    table.add_column("latency", justify="right")
    table.add_column("detail")
    for check in checks:
        latency = f"{check.latency_ms:.1f} ms" if check.latency_ms is not None else ""
        state = "[green]healthy[/]" if check.ok else "[red]DOWN[/]"
        table.add_row(check.name, state, latency, check.detail)
    Console().print(table)


@main.command()
@click.option("--venue", required=True, help="The venue whose adapter parses the capture.")
@click.option("--no-publish", is_flag=True, help="Only parse and summarise; do not write to Redis.")
@click.option("--realtime", is_flag=True, help="Keep the recorded pacing instead of full speed.")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def replay(venue: str, no_publish: bool, realtime: bool, files: tuple[str, ...]) -> None:
    """Replay capture FILES (one WebSocket recording plus its REST replies) through a venue's
    adapter and print a JSON summary; publishes to Redis unless --no-publish."""
    from cluster.replay_command import run_replay

    try:
        summary = run_replay(
            venue, [Path(f) for f in files], publish=not no_publish, realtime=realtime
        )
    except PlatformError as error:
        _fail(error)
    click.echo(json.dumps(summary, indent=2))


@main.command("import-bars")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--venue", required=True, help="Venue the history belongs to, e.g. alpaca.")
@click.option("--symbol", required=True, help="Normalized symbol, e.g. AAPL or BTC-USDT.")
@click.option("--interval", required=True, type=click.Choice(INTERVALS), help="Bar length.")
def import_bars(file: Path, venue: str, symbol: str, interval: str) -> None:
    """Load OHLCV bars from a CSV or Parquet FILE into the bars table (validated, idempotent)."""
    import asyncio

    from cluster.bars_import import read_bars_file, write_bars
    from cluster.service_urls import database_url_for

    try:
        database_url = database_url_for(_load_settings())
        with stderr.status(f"validating {file}"):
            bars = read_bars_file(file)
        with stderr.status(f"writing {len(bars.rows):,} bars"):
            inserted, updated = asyncio.run(write_bars(database_url, venue, symbol, interval, bars))
    except PlatformError as error:
        _fail(error)
    first = time.strftime("%Y-%m-%d %H:%M", time.gmtime(bars.first_ns / 1e9))
    last = time.strftime("%Y-%m-%d %H:%M", time.gmtime(bars.last_ns / 1e9))
    unchanged = len(bars.rows) - inserted - updated
    click.echo(
        f"{venue}:{symbol} {interval}: {len(bars.rows):,} bars from {first} to {last} UTC; "
        f"{inserted:,} new, {updated:,} updated, {unchanged:,} unchanged"
    )


@main.command("create-admin")
@click.option("--email", required=True, help="The admin's email address.")
def create_admin(email: str) -> None:
    """Create the first admin account (or make an existing account an admin).

    The password is prompted for, or read from FINONE_ADMIN_PASSWORD when set (CI)."""
    import asyncio

    from email_validator import EmailNotValidError, validate_email

    from cluster.service_urls import database_url_for
    from serve.auth.accounts import normalize_email
    from serve.auth.bootstrap import AdminOutcome, admin_exists, create_admin

    settings = _settings_or_exit()
    try:
        email = normalize_email(validate_email(email, check_deliverability=False).normalized)
        database_url = database_url_for(settings)
        existing = asyncio.run(admin_exists(database_url, email))
        password = None
        if existing is None:
            password = (
                settings.admin_password.get_secret_value()
                if settings.admin_password
                else click.prompt("Password", hide_input=True, confirmation_prompt=True)
            )
        outcome = asyncio.run(create_admin(database_url, settings, email, password))
    except (EmailNotValidError, ValueError) as error:
        _fail(PlatformError(str(error)))
    except PlatformError as error:
        _fail(error)
    if outcome is AdminOutcome.created:
        click.echo(f"created admin {email}")
    else:
        click.echo(f"{email}: {outcome.value}")


@main.command("load-sample-data")
def load_sample_data() -> None:
    """Load the bundled daily history of AAPL, GOOG, IBM and MSFT (2000-2013, public domain,
    split-adjusted) into the bars table as alpaca:<SYMBOL> 1d bars; twice changes nothing."""
    import asyncio

    from cluster.sample_data import load_sample_bars
    from cluster.service_urls import database_url_for
    from core.migrate import upgrade_database_async

    try:
        database_url = database_url_for(_load_settings())
        with stderr.status("loading the bundled stock history"):
            asyncio.run(upgrade_database_async(database_url))
            loaded = asyncio.run(load_sample_bars(database_url))
    except PlatformError as error:
        _fail(error)
    for symbol, (bars, inserted, updated) in loaded.items():
        click.echo(f"alpaca:{symbol} 1d: {bars:,} bars; {inserted:,} new, {updated:,} updated")


@main.command()
@click.option(
    "--instrument",
    "instruments",
    multiple=True,
    required=True,
    help="Instrument id, e.g. alpaca:IBM; repeat to pool several.",
)
@click.option("--interval", default="1d", type=click.Choice(INTERVALS), show_default=True)
@click.option("--folds", default=4, show_default=True, help="Walk-forward test windows.")
@click.option("--test-size", default=250, show_default=True, help="Bars per test window.")
@click.option(
    "--models",
    default="mlp,gru",
    show_default=True,
    help="Models to train on each fold beside the baselines ('' for none).",
)
@click.option("--epochs", default=15, show_default=True, help="Training epochs per model and fold.")
def evaluate(
    instruments: tuple[str, ...],
    interval: str,
    folds: int,
    test_size: int,
    models: str,
    epochs: int,
) -> None:
    """Score the forecasters out of sample on walk-forward folds of the bars table: pinball
    loss, 80% interval coverage, direction and information coefficient for returns; QLIKE and
    MSE for volatility. The scores, tables and plots are logged as one MLflow run (experiment
    finone-evaluations) when MLflow is configured or the platform is running."""
    import asyncio

    from mlflow.exceptions import MlflowException

    from cluster.service_urls import database_url_for
    from training.datasets import load_dataset
    from training.evaluation import WalkForward, all_forecasts, all_scores
    from training.report import log_evaluation, score_tables
    from training.trainer import TrainConfig

    plan = WalkForward(folds=folds, test_size=test_size)
    names = [m for m in models.split(",") if m]
    unknown = set(names) - {"mlp", "gru"}
    if unknown:
        _fail(PlatformError(f"unknown model(s): {', '.join(sorted(unknown))}; choose mlp, gru"))
    configs = {name: TrainConfig(model=name, epochs=epochs) for name in names}  # type: ignore[arg-type]
    try:
        settings = _load_settings()
        database_url = database_url_for(settings)
    except PlatformError as error:
        _fail(error)
    tracking_uri = _tracking_uri_or_none(settings)
    try:
        with stderr.status("loading bars and making features"):
            table = asyncio.run(load_dataset(database_url, list(instruments), interval))
        work = f"fitting baselines and {len(names)} model(s) on {folds} folds"
        with _work_progress(work) as step_done:
            forecasts = all_forecasts(table, plan, configs, step_done)
    except PlatformError as error:
        _fail(error)
    scores = all_scores(forecasts, names, plan)
    tables = score_tables(scores, names, plan, len(forecasts))
    # Piped or logged, the tables keep their full rows (rich would fit them to 80 columns).
    console = Console() if sys.stdout.isatty() else Console(width=200)
    for score_table in tables:
        console.print(score_table.rich())
    if tracking_uri is None:
        return
    params: dict[str, str | int] = {
        "instruments": ",".join(instruments),
        "interval": interval,
        "folds": folds,
        "test_size": test_size,
        "models": ",".join(names),
        "epochs": epochs,
    }
    try:
        with stderr.status("logging the evaluation to MLflow"):
            run_id = log_evaluation(tracking_uri, params, scores, tables, forecasts, names)
    except MlflowException as error:
        _fail(PlatformError(f"the evaluation was not logged to MLflow at {tracking_uri}: {error}"))
    click.echo(f"MLflow run {run_id} at {tracking_uri}")


def _tracking_uri_or_none(settings: Settings) -> str | None:
    """MLflow's URL, with its service account in this process's environment, or None when there
    is none (said at once, before any long work: an evaluation's scores are worth printing
    without MLflow)."""
    from cluster.service_urls import mlflow_client_env_for, mlflow_url_for

    try:
        tracking_uri = mlflow_url_for(settings)
    except PlatformError as error:
        click.echo(f"finone: the evaluation will not be logged to MLflow: {error}", err=True)
        return None
    os.environ.update(mlflow_client_env_for(settings))
    return tracking_uri


@contextmanager
def _work_progress(description: str) -> Iterator[Callable[[Step], None]]:
    """A progress bar on stderr, and the callback that moves it as each step is done."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr) as progress:
        task = progress.add_task(description, total=None)

        def show(step: Step) -> None:
            progress.update(
                task, completed=step.done, total=step.total, description=f"{step.unit} done"
            )

        yield show


@main.command()
@click.option(
    "--instrument",
    "instruments",
    multiple=True,
    required=True,
    help="Instrument id, e.g. alpaca:IBM; repeat to pool several.",
)
@click.option("--interval", default="1d", type=click.Choice(INTERVALS), show_default=True)
@click.option(
    "--samples",
    default=8,
    show_default=True,
    type=click.IntRange(1),
    help="Hyperparameter sets to try.",
)
@click.option(
    "--epochs",
    default=15,
    show_default=True,
    type=click.IntRange(1),
    help="Most epochs a trial may train.",
)
@click.option(
    "--folds",
    default=4,
    show_default=True,
    type=click.IntRange(1),
    help="Walk-forward test windows.",
)
@click.option(
    "--test-size",
    default=250,
    show_default=True,
    type=click.IntRange(10),
    help="Bars per test window.",
)
@click.option(
    "--cpus-per-trial",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="CPUs each trial holds: trials run side by side as the cluster's CPUs allow.",
)
def train(
    instruments: tuple[str, ...],
    interval: str,
    samples: int,
    epochs: int,
    folds: int,
    test_size: int,
    cpus_per_trial: float,
) -> None:
    """Retrain once: a Ray Tune search, the winner scored on walk-forward folds beside the
    baselines, logged to MLflow and promoted to champion per target only if it beats the
    champion and every baseline."""
    import asyncio

    from cluster.service_urls import (
        database_url_for,
        mlflow_url_for,
        ray_connection,
        training_env,
    )
    from training.datasets import load_dataset
    from training.evaluation import WalkForward
    from training.pipeline import retrain
    from training.search import SearchSettings

    settings = _settings_or_exit()
    plan = WalkForward(folds=folds, test_size=test_size)
    try:
        database_url, tracking_uri = database_url_for(settings), mlflow_url_for(settings)
        # This process logs and signs the winner; the search's trials, Ray workers, log theirs.
        worker_env = training_env(settings)
        os.environ.update(worker_env)
        with stderr.status("loading bars and making features"):
            table = asyncio.run(load_dataset(database_url, list(instruments), interval))
        search = SearchSettings(samples=samples, max_epochs=epochs, cpus_per_trial=cpus_per_trial)
        work = f"searching {samples} configurations, then judging the best on {folds} folds"
        with ray_connection(settings, worker_env), _work_progress(work) as step_done:
            result = retrain(
                table,
                interval,
                plan,
                search,
                tracking_uri,
                "finone-forecasters",
                settings.data_path / "tune",
                step_done,
            )
    except PlatformError as error:
        _fail(error)
    for run_id in result.run_ids:
        click.echo(f"MLflow run {run_id} at {tracking_uri}")
    for decision in result.decisions:
        click.echo(f"{decision.name} v{decision.version}: {decision.alias} ({decision.reason})")


@main.command("sign-model")
@click.argument("name")
@click.argument("version")
@click.option("--yes", is_flag=True, help="Sign without asking for confirmation.")
def sign_model(name: str, version: str, yes: bool) -> None:
    """Sign VERSION of the registered model NAME with the platform's key, so that inference
    loads it when it is `champion`: for a version made by hand, which inference refuses
    unsigned. Loading a model runs its code in the inference replicas; sign only what you trust."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from cluster.service_urls import mlflow_client_env_for, mlflow_url_for
    from core.model_signing import SIGNATURE_TAG, signing_key
    from training.registry import sign_version

    settings = _settings_or_exit()
    try:
        tracking_uri = mlflow_url_for(settings)
    except PlatformError as error:
        _fail(error)
    os.environ.update(mlflow_client_env_for(settings))
    client = MlflowClient(tracking_uri)
    try:
        found = client.get_model_version(name, version)
    except MlflowException as error:
        _fail(PlatformError(f"no version {version} of {name} in MLflow: {error.message}"))
    aliases = ", ".join(found.aliases) or "none"
    click.echo(f"{name} v{version}: from {found.source}, by {found.user_id or 'unknown'}")
    click.echo(f"  aliases: {aliases}; already signed: {SIGNATURE_TAG in found.tags}")
    click.echo(
        "Signing records a digest of its files as they are now, signed with the platform's key; "
        "inference will then load it, which runs the model's code in the inference replicas."
    )
    if not yes and not click.confirm("Sign it?", default=False):
        click.echo("not signed")
        sys.exit(1)
    key = signing_key(settings.secret_key.get_secret_value())
    try:
        digest = sign_version(client, name, version, key)
    except MlflowException as error:
        _fail(PlatformError(f"{name} v{version} was not signed: {error.message}"))
    click.echo(f"signed {name} v{version} (artifacts digest {digest})")


@main.command("dashboard-token")
def dashboard_token() -> None:
    """Print the token that signs in to the Ray dashboard of the local stack."""
    from cluster.ray_head import token_path

    _print_local_secret(token_path, "token")


@main.command("mlflow-password")
def mlflow_password() -> None:
    """Print the password of `admin`, who signs in to the MLflow UI of the local stack."""
    from cluster.embedded_mlflow import admin_password_path

    _print_local_secret(admin_password_path, "MLflow password")


def _print_local_secret(path_in: Callable[[Path], Path], what: str) -> None:
    """Print the secret the local stack generated at ``path_in(data dir)`` on its first start."""
    settings = _settings_or_exit()
    path = path_in(settings.data_path)
    if not path.exists():
        where = settings.data_path
        _fail(PlatformError(f"no {what} yet in {where}; start the platform with `finone up`"))
    click.echo(path.read_text().strip())


@main.command("openapi")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the document to this file instead of standard output.",
)
def openapi(output: Path | None) -> None:
    """Print the API's OpenAPI document (JSON), as the gateway serves it at /openapi.json.

    Needs no running service: the web app's build generates its API types from it."""
    from serve.app import openapi_document

    text = json.dumps(openapi_document(), indent=1, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    elif not output.exists() or output.read_text() != text:
        # Rewritten only when it changed, so the web build's stamp sees no change otherwise.
        output.write_text(text)
