"""The ``supportstream`` command line (CONTRACT §5).

Exit codes: 0 success, 2 bad usage or a refused rules file, 1 anything else. Messages name the
problem without a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from processors.durations import parse_duration
from processors.language import use_model_loader
from processors.rules import Rules, RulesError, check_config, config_warnings, load_rules
from processors.timeutil import parse_rfc3339
from sinks.backend import QueryError, SinkError
from sinks.chdb_backend import ChdbBackend
from streams import connect_cli, worker_cli
from streams.local import LocalRunner, embedded_warehouse, replay_file
from streams.logging import configure_logging
from streams.model_cache import CachedModel
from streams.parse_pool import default_parse_workers
from streams.replay_input import InputError, check_input
from streams.runtime import tune_garbage_collector
from streams.settings import Settings, SettingsError

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """The command line asks for something that cannot be done as asked (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"supportstream: {message}\n")


class _Version(argparse.Action):
    """``--version``: the installed version and how the domain runs here (compiled with mypyc
    or interpreted, docs/REPLAY.md "What runs compiled"), worked out only when asked."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        from importlib.metadata import version

        from processors.native import describe

        print(f"supportstream {version('supportstream')}; {describe()}")
        parser.exit(EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="supportstream", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--version",
        action=_Version,
        nargs=0,
        help="the version, and whether the domain is compiled",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo", help="realistic traffic through the pipeline, then a report")
    demo.add_argument(
        "--duration", help="run live for this long (e.g. 30s, 5m); without it, replay a week"
    )
    demo.add_argument("--warehouse", default="./.supportstream/demo", help="demo warehouse dir")
    demo.add_argument("--rules", type=Path, default=None, help="rules file (default: the demo's)")
    demo.add_argument("--seed", type=int, default=7, help="traffic generator seed")
    demo.add_argument("--tickets", type=int, default=400, help="tickets in the replayed week")
    demo.add_argument("--rate", type=float, default=1200.0, help="live: tickets per hour")
    demo.add_argument(
        "--log-format",
        choices=("auto", "console", "json"),
        default="auto",
        help="console: progress on one line, warnings summarised after the run; json: JSON "
        "log lines; auto (default): console on a terminal, json otherwise",
    )

    replay = commands.add_parser("replay", help="run the whole pipeline over a JSON Lines file")
    replay.add_argument("--rules", required=True, type=Path, help="rules file (YAML)")
    replay.add_argument(
        "--input", required=True, type=Path, help="input records (JSON Lines; - for stdin)"
    )
    replay.add_argument("--until", help="RFC 3339 instant: replay up to it and fire timers due")
    replay.add_argument("--warehouse", default=None, help="embedded warehouse directory")

    sql = commands.add_parser("sql", help="run SQL on the embedded warehouse")
    sql.add_argument("--warehouse", default=None, help="embedded warehouse directory")
    sql.add_argument("--format", default="PrettyCompactMonoBlock", help="ClickHouse output format")
    sql.add_argument("query", help="the SQL query; tables are those of the supportstream database")

    check = commands.add_parser("check-config", help="validate a rules file")
    check.add_argument("rules", type=Path, help="rules file (YAML)")

    report = commands.add_parser("report", help="one self-contained HTML page of charts")
    report.add_argument("--warehouse", default=None, help="embedded warehouse directory")
    report.add_argument(
        "--out", type=Path, default=None, help="HTML file to write (default: report.html)"
    )
    report.add_argument("--from", dest="first", help="first reporting day (YYYY-MM-DD)")
    report.add_argument("--to", dest="last", help="last reporting day (YYYY-MM-DD), inclusive")

    whatif = commands.add_parser("whatif", help="replay under new rules and show what changes")
    whatif.add_argument("--rules", required=True, type=Path, help="the new rules file")
    whatif.add_argument("--baseline", required=True, type=Path, help="the current rules file")
    whatif.add_argument("--input", required=True, type=Path, help="input records (JSON Lines)")
    whatif.add_argument("--until", help="RFC 3339 instant: replay up to it and fire timers due")
    whatif.add_argument(
        "--out", type=Path, default=Path("whatif"), help="directory for whatif.json/.html"
    )
    connect_cli.add_parsers(commands)
    worker_cli.add_parsers(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    tune_garbage_collector()
    args = build_parser().parse_args(argv)
    _configure_logging(args.debug, args.command)
    try:
        settings = Settings.from_env()
        use_model_loader(CachedModel(settings.cache_dir))
        return int(_COMMANDS[args.command](args, settings))
    except RulesError as error:
        print(f"supportstream: rules refused: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (UsageError, SettingsError, InputError) as error:
        print(f"supportstream: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (QueryError, SinkError) as error:
        if args.debug:
            raise
        print(f"supportstream: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("supportstream: interrupted", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:
        if args.debug:
            raise
        print(f"supportstream: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE


def _configure_logging(debug: bool, command: str) -> None:
    # Services log at info what an SRE watches (flushes, partitions taken; dead letters as
    # warnings), per-record lines only with --debug (streams.logging). Commands a
    # person watches (replay, demo, sql) only warn, so events do not flood the terminal;
    # --debug shows everything.
    long_running = command in ("worker", "sink", "connect")
    configure_logging(debug, level=None if (debug or long_running) else logging.WARNING)


def _warehouse(arg: str | None, settings: Settings) -> Path:
    return Path(arg if arg is not None else settings.warehouse)


def _cmd_check_config(args: argparse.Namespace, settings: Settings) -> int:
    code, message = check_config(args.rules)
    print(message, file=sys.stdout if code == 0 else sys.stderr)
    if code == 0:
        _warn_about(load_rules(args.rules), args.rules)
    return code


def _warn_about(rules: Rules, path: Path) -> None:
    """Allowed but probably a mistake (docs/RULES.md "Skills"): said on stderr, never refused."""
    for warning in config_warnings(rules):
        print(f"{path}: warning: {warning}", file=sys.stderr)


def _cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    rules = load_rules(args.rules)
    _warn_about(rules, args.rules)
    until = None
    if args.until is not None:
        try:
            until = parse_rfc3339(args.until)
        except ValueError as error:
            raise UsageError(f"--until: {error}") from None
    check_input(args.input)
    pseudo = settings.pseudonymizer()
    warehouse = _warehouse(args.warehouse, settings)
    with embedded_warehouse(warehouse, rules, background_inserts=True) as writer:
        runner = LocalRunner(rules, pseudo, writer)
        stats = replay_file(runner, args.input, until=until, parse_workers=default_parse_workers())
        writer.compact()
    print(f"replayed {args.input}: {stats.summary()}; warehouse {warehouse}")
    if stats.not_replayed:
        print(f"{stats.not_replayed} records after --until were not replayed", file=sys.stderr)
    return EXIT_OK


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    warehouse = _warehouse(args.warehouse, settings)
    if not warehouse.exists():
        print(
            f"supportstream: no warehouse at {str(warehouse)!r} (run replay or demo first)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    backend = ChdbBackend(warehouse)
    try:
        sys.stdout.write(backend.query_formatted(args.query, args.format))
    finally:
        backend.close()
    return EXIT_OK


def _day(flag: str, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{flag}: {value!r} is not a day (YYYY-MM-DD)") from None


def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from streams.report import Period, build_report, empty_report, write_report

    period = Period(_day("--from", args.first), _day("--to", args.last))
    if period.first and period.last and period.first > period.last:
        raise UsageError(f"--from {period.first} is after --to {period.last}")
    warehouse = _warehouse(args.warehouse, settings)
    out = args.out if args.out is not None else Path("report.html")
    if out.is_dir():
        out = out / "report.html"
    if not warehouse.exists():
        # A clear page rather than an error: whoever opens it learns what to do.
        report = empty_report(period, f"There is no warehouse at {warehouse} yet.")
        print(f"supportstream: no warehouse at {str(warehouse)!r}", file=sys.stderr)
    else:
        backend = ChdbBackend(warehouse)
        try:
            report = build_report(backend, period)
        finally:
            backend.close()
    path = write_report(report, out)
    drawn = sum(s.has_data for s in report.sections)
    print(f"report: {path} ({drawn} of {len(report.sections)} sections with data)")
    return EXIT_OK


def _cmd_whatif(args: argparse.Namespace, settings: Settings) -> int:
    from streams.whatif import run_whatif

    until = None
    if args.until is not None:
        try:
            until = parse_rfc3339(args.until)
        except ValueError as error:
            raise UsageError(f"--until: {error}") from None
    check_input(args.input)
    return run_whatif(
        baseline_path=args.baseline,
        rules_path=args.rules,
        input_path=args.input,
        until=until,
        out=args.out,
        pseudo=settings.pseudonymizer(),
    )


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from streams.demo import run_demo

    duration_ms = None
    if args.duration is not None:
        try:
            duration_ms = parse_duration(args.duration)
        except ValueError as error:
            raise UsageError(f"--duration: {error}") from None
    if args.rate <= 0 or args.tickets < 0:
        raise UsageError("--rate must be positive and --tickets not negative")
    return run_demo(
        warehouse=Path(args.warehouse),
        seed=args.seed,
        tickets=args.tickets,
        pseudo=settings.pseudonymizer(),
        pii_key=settings.pii_key,
        rules_path=args.rules,
        duration_ms=duration_ms,
        tickets_per_hour=args.rate,
        metrics_port=settings.metrics_port,
        log_format=args.log_format,
    )


_COMMANDS = {
    "check-config": _cmd_check_config,
    "replay": _cmd_replay,
    "sql": _cmd_sql,
    "demo": _cmd_demo,
    "report": _cmd_report,
    "whatif": _cmd_whatif,
    "connect": connect_cli.run_connect,
    **worker_cli.COMMANDS,
}


if __name__ == "__main__":
    sys.exit(main())
