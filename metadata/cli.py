"""The `metadata` command: serve, db, instances, config."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from metadata.config import FLAG_SETTINGS, Settings, env_name, load_settings
from metadata.errors import InvalidSettings
from metadata.startup import run_coroutine, upgrade_schema

# serve flags: one per setting, named after it (database_url -> --database-url).
SETTING_FLAGS = FLAG_SETTINGS
# What a config drive's contents depend on.
CONFIG_DRIVE_SETTINGS = [
    "database_url",
    "user_data_max_bytes",
    "vendor_data",
    "vendor_data_targets",
    "vendor_data_timeout",
]


def _add_settings_flags(parser: argparse.ArgumentParser, names: Sequence[str]) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    for name in names:
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, metavar="VALUE", help=f"also {env_name(name)}"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="metadata", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the guest and admin listeners")
    _add_settings_flags(serve, SETTING_FLAGS)
    serve.add_argument(
        "--demo",
        action="store_true",
        help="first seed an example instance owned by 127.0.0.1 (SQLite only)",
    )
    serve.add_argument(
        "--force-demo", action="store_true", help="--demo, even on a database that is not SQLite"
    )

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

    drive = commands.add_parser("config-drive", help="write an instance's config drive image")
    drive.add_argument("uuid", help="the instance")
    drive.add_argument("--output", "-o", required=True, help="the ISO 9660 file to write")
    _add_settings_flags(drive, CONFIG_DRIVE_SETTINGS)

    stats = commands.add_parser("stats", help="per-path statistics of a running server")
    stats.add_argument("--admin-url", help="default: the admin listener from the settings")
    stats.add_argument("--token", help="admin token (default: settings, or the token file)")
    stats.add_argument("--json", action="store_true", help="print the raw JSON")
    _add_settings_flags(stats, ["admin_listen", "admin_token_file"])

    _add_user_data_commands(commands)

    config = commands.add_parser("config", help="settings")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    show = config_commands.add_parser("show", help="print the effective settings, masked")
    _add_settings_flags(show, SETTING_FLAGS)
    return parser


def _add_user_data_commands(commands: Any) -> None:
    user_data = commands.add_parser("user-data", help="an instance's user data on a running server")
    actions = user_data.add_subparsers(dest="user_data_command", required=True)
    put, get, history, restore, delete = (
        actions.add_parser(name, help=text)
        for name, text in (
            ("set", "replace it with a file's bytes"),
            ("get", "write the current bytes"),
            ("history", "list the recorded changes, newest first"),
            ("restore", "make an earlier version current again"),
            ("delete", "remove it"),
        )
    )
    for action in (put, get, history, restore, delete):
        action.add_argument("uuid", help="the instance")
    put.add_argument("file", help="the file, or - for standard input")
    get.add_argument("--output", "-o", default="-", help="file, or - for standard output")
    history.add_argument("--json", action="store_true", help="print the raw JSON")
    restore.add_argument("version", type=int, help="a version number from `history`")
    for action in (put, get, history, restore, delete):
        action.add_argument("--admin-url", help="default: the admin listener from the settings")
        action.add_argument("--token", help="admin token (default: settings, or the token file)")
        if action in (put, restore, delete):
            action.add_argument(
                "--if-match", metavar="ETAG", help="only if the current user data has this ETag"
            )
        _add_settings_flags(action, ["admin_listen", "admin_token_file"])


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {name: getattr(args, name, None) for name in SETTING_FLAGS}
    return load_settings(args.config, flags=flags)


async def _db_upgrade(settings: Settings) -> None:
    print(f"schema at revision {await upgrade_schema(settings)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        if settings.nova_config and args.command == "serve":
            from metadata.nova.conf import load_nova_config

            # Before anything starts: a bad nova.conf is named as any bad setting is.
            load_nova_config(settings.nova_config)
    except InvalidSettings as exc:
        print(f"metadata: {exc}", file=sys.stderr)
        return 2
    from metadata.logs import configure_logging

    # log_format is for the service; the one-shot commands talk to a person at a terminal.
    configure_logging(settings, None if args.command == "serve" else "text")
    if getattr(args, "demo", False) or getattr(args, "force_demo", False):
        from metadata.demo import prepare_demo

        try:
            prepare_demo(settings, force=args.force_demo)
        except InvalidSettings as exc:
            print(f"metadata: {exc}", file=sys.stderr)
            return 2
    handlers: dict[str, Callable[[], Any]] = {
        "serve": lambda: (
            _serve_workers(settings) if settings.workers > 1 else run_coroutine(_serve(settings))
        ),
        "db": lambda: run_coroutine(_db_upgrade(settings)),
        "instances": lambda: _instances(args, settings),
        "config": lambda: print(
            orjson.dumps(settings.masked(), option=orjson.OPT_INDENT_2).decode()
        ),
    }
    handlers["stats"] = lambda: _stats(args, settings)
    handlers["config-drive"] = lambda: run_coroutine(_config_drive(args, settings))
    handlers["user-data"] = lambda: _user_data(args, settings)
    result = handlers[args.command]()
    return int(result or 0)


async def _serve(settings: Settings) -> None:
    from metadata.app import serve

    await serve(settings)


def _serve_workers(settings: Settings) -> int:
    from metadata import workers

    return workers.run(settings)


def _instances(args: argparse.Namespace, settings: Settings) -> int:
    from metadata.admin import importer

    if args.instances_command == "import":
        return int(
            run_coroutine(
                importer.import_file(settings, args.file, args.batch_size, progress=not args.quiet)
            )
        )
    return int(run_coroutine(importer.export_file(settings, args.output)))


async def _config_drive(args: argparse.Namespace, settings: Settings) -> int:
    from metadata.configdrive import write_config_drive
    from metadata.document import normalise_uuid
    from metadata.errors import InvalidDocument, MetadataError

    try:
        uuid = normalise_uuid(args.uuid)
    except InvalidDocument:
        print(f"metadata: {args.uuid!r} is not an instance uuid", file=sys.stderr)
        return 1
    try:
        size = await write_config_drive(settings, uuid, Path(args.output))
    except (MetadataError, OSError) as exc:
        print(f"metadata: {getattr(exc, 'message', None) or exc}", file=sys.stderr)
        return 1
    print(f"wrote the config drive of {uuid} to {args.output} ({size} bytes)", file=sys.stderr)
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from metadata.admin.client import AdminClient, AdminClientError

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


def _user_data(args: argparse.Namespace, settings: Settings) -> int:
    from metadata.admin.client import AdminClient, AdminClientError

    command = args.user_data_command
    path = f"/v1/instances/{args.uuid}/user-data"
    headers = {"If-Match": args.if_match} if getattr(args, "if_match", None) else {}
    method, body = {
        "set": ("PUT", None),
        "get": ("GET", None),
        "delete": ("DELETE", None),
        "history": ("GET", None),
        "restore": ("POST", None),
    }[command]
    if command == "set":
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    elif command == "history":
        path += "/history"
    elif command == "restore":
        path += f"/history/{args.version}/restore"
    try:
        client = AdminClient.from_settings(settings, args.admin_url, args.token)
        status, answer_headers, answer = client.request(method, path, body, headers)
    except AdminClientError as exc:
        print(f"metadata: {exc}", file=sys.stderr)
        return 1
    if status >= 400:
        print(
            f"metadata: the admin API answered {status}: {answer[:300].decode(errors='replace')}",
            file=sys.stderr,
        )
        return 1
    etag = answer_headers.get("ETag")
    if command == "get":
        if args.output == "-":
            sys.stdout.buffer.write(answer)
            sys.stdout.buffer.flush()
        else:
            Path(args.output).write_bytes(answer)
    elif command == "history" and not args.json:
        print(format_history_table(orjson.loads(answer)["history"]))
    elif command == "history":
        sys.stdout.write(answer.decode() + "\n")
    # The ETag to pass as --if-match next time; on stderr, so `get` output stays the bytes.
    if etag:
        print(f"ETag: {etag}", file=sys.stderr)
    return 0


def format_history_table(rows: list[dict[str, Any]]) -> str:
    lines = [("version", "changed_at", "by", "action", "size", "sha256", "restorable")]
    for row in rows:
        lines.append(
            (
                str(row["version"]),
                row["changed_at"],
                row["changed_by"],
                row["action"],
                "-" if row["size"] is None else str(row["size"]),
                (row["sha256"] or "-")[:16],
                "yes" if row["restorable"] else "no",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def format_stats_table(rows: list[dict[str, Any]]) -> str:
    header = ("path", "version", "hits", "hit%", "sql", "bytes", "p50ms", "p95ms", "p99ms")
    lines = [header]
    for row in rows:
        ratio = row["cache_hits"] / row["hits"] if row["hits"] else 0.0
        lines.append(
            (
                row["path"],
                row["version"],
                str(row["hits"]),
                f"{ratio:.1%}",
                str(row["db_statements"]),
                str(row["bytes"]),
                *(
                    f"{row[k]:g}" if row[k] is not None else "-"
                    for k in ("p50_ms", "p95_ms", "p99_ms")
                ),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    )


if __name__ == "__main__":
    sys.exit(main())
