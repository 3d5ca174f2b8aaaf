"""The `metadata` command: serve, db, instances, config."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import orjson

from metadata.config import FLAG_SETTINGS, Settings, env_name, load_settings
from metadata.errors import InvalidSettings

# serve flags: one per setting, named after it (database_url -> --database-url).
SETTING_FLAGS = FLAG_SETTINGS


def _add_settings_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), dest=name, metavar="VALUE",
                            help=f"also {env_name(name)}")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metadata", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the guest and admin listeners")
    _add_settings_flags(serve, SETTING_FLAGS)

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="create or migrate the schema")
    _add_settings_flags(upgrade, ["database_url"])

    instances = commands.add_parser("instances", help="bulk import and export")
    inst_commands = instances.add_subparsers(dest="instances_command", required=True)
    imp = inst_commands.add_parser("import", help="import a JSON array or JSON lines file")
    imp.add_argument("file", help="the file, or - for standard input")
    imp.add_argument("--batch-size", type=int, default=1000)
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_settings_flags(imp, ["database_url", "user_data_max_bytes"])
    exp = inst_commands.add_parser("export", help="write every instance as JSON lines")
    exp.add_argument("--output", "-o", default="-", help="file, or - for standard output")
    _add_settings_flags(exp, ["database_url"])

    stats = commands.add_parser("stats", help="per-path statistics of a running server")
    stats.add_argument("--admin-url", help="default: the admin listener from the settings")
    stats.add_argument("--token", help="admin token (default: settings, or the token file)")
    stats.add_argument("--json", action="store_true", help="print the raw JSON")
    _add_settings_flags(stats, ["admin_listen", "admin_token_file"])

    config = commands.add_parser("config", help="settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="print the effective settings, masked")
    _add_settings_flags(show, SETTING_FLAGS)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name, None) for name in SETTING_FLAGS}
    return load_settings(args.config, flags=flags)


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


async def _db_upgrade(settings: Settings) -> None:
    from metadata.store.engine import Database
    from metadata.store.migrate import current_revision, upgrade

    db = Database(settings.database_url)
    try:
        await upgrade(db.writer)
        print(f"schema at revision {await current_revision(db.writer)}")
    finally:
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except InvalidSettings as exc:
        print(f"metadata: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # fmt: skip
    handlers: dict[str, Callable[[], Any]] = {
        "serve": lambda: _serve_workers(settings) if settings.workers > 1
        else _run(_serve(settings)),
        "db": lambda: _run(_db_upgrade(settings)),
        "instances": lambda: _instances(args, settings),
        "config": lambda: print(orjson.dumps(settings.masked(),
                                             option=orjson.OPT_INDENT_2).decode()),
    }  # fmt: skip
    handlers["stats"] = lambda: _stats(args, settings)
    result = handlers[args.command]()
    return int(result or 0)


async def _serve(settings: Settings) -> None:
    from metadata.app import serve

    await serve(settings)


def _serve_workers(settings: Settings) -> int:
    from metadata import workers

    return workers.run(settings)


def _instances(args: argparse.Namespace, settings: Settings) -> int:
    from metadata import importer

    if args.instances_command == "import":
        return int(_run(importer.import_file(settings, args.file, args.batch_size,
                                             progress=not args.quiet)))  # fmt: skip
    return int(_run(importer.export_file(settings, args.output)))


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from metadata.admin_client import AdminClient, AdminClientError

    try:
        client = AdminClient.from_settings(settings, args.admin_url, args.token)
        status, _, body = client.request("GET", "/v1/stats/paths")
    except AdminClientError as exc:
        print(f"metadata: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"metadata: the admin API answered {status}: {body[:200]!r}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(body.decode() + "\n")
        return 0
    print(format_stats_table(orjson.loads(body)["paths"]))
    return 0


def format_stats_table(rows: list[dict[str, Any]]) -> str:
    header = ("path", "version", "hits", "hit%", "sql", "bytes", "p50ms", "p95ms", "p99ms")
    lines = [header]
    for row in rows:
        ratio = row["cache_hits"] / row["hits"] if row["hits"] else 0.0
        lines.append((row["path"], row["version"], str(row["hits"]), f"{ratio:.1%}",
                      str(row["db_statements"]), str(row["bytes"]),
                      *(f"{row[k]:g}" if row[k] is not None else "-"
                        for k in ("p50_ms", "p95_ms", "p99_ms"))))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w)
                  for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
        for line in lines
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
