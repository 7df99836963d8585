"""``adx schema``: the supergraph's schema files, their checks, and the router that serves them.

``export``  each BFF subgraph's SDL (built in-process, no server) -> schema/subgraphs/<name>.graphql
``compose`` schema/subgraphs/*.graphql -> schema/supergraph.graphql + schema/public.graphql
            (the public SDL is the frontend contract; a breaking change to it is refused unless
            schema/breaking-changes-allowed.txt lists it)
``check``   what ``make test`` runs: the code's schema composes, equals the committed files, and
            breaks nothing of the committed public SDL that the allow-list does not name
``router``  the supergraph router (GraphQL Hive Gateway, router/) on the router port, serving the
            schema composed from the code (what ``adx dev`` runs)

Composition (@theguild/federation-composition) and the diff (graphql-inspector) are Node tools in
router/compose/; the gateway is in router/. ``make schema`` regenerates every file.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from adx.settings import REPO_ROOT, Environment, Settings, get_settings

HELP = "export, compose and check the supergraph schema; run the supergraph router"

SCHEMA_DIR = REPO_ROOT / "schema"
SUBGRAPHS_DIR = SCHEMA_DIR / "subgraphs"
SUPERGRAPH_FILE = "supergraph.graphql"
PUBLIC_FILE = "public.graphql"
ALLOW_LIST = SCHEMA_DIR / "breaking-changes-allowed.txt"
ROUTER_DIR = REPO_ROOT / "router"
COMPOSE_DIR = ROUTER_DIR / "compose"
GATEWAY_CONFIG = ROUTER_DIR / "gateway.config.ts"
GATEWAY_BIN = ROUTER_DIR / "node_modules" / "@graphql-hive" / "gateway" / "dist" / "bin.js"
# The SDK's generated documents by sha256 (sdk/scripts/trusted-documents.mjs, `make schema`):
# with trusted documents on, the only documents the router runs.
TRUSTED_DOCUMENTS = REPO_ROOT / "sdk" / "src" / "generated" / "trusted-documents.json"
REGENERATE = "make schema"
# Lines of a unified diff shown per differing file before "... (N more lines)".
DIFF_LINES = 80


class SchemaError(Exception):
    """A failure to report to the user as it is (no traceback)."""


class CompositionFailed(SchemaError):
    def __init__(self, errors: list[dict[str, str | None]]) -> None:
        self.errors = errors
        lines = [f"  {e.get('code') or 'ERROR'}: {e.get('message')}" for e in errors]
        super().__init__("supergraph composition failed:\n" + "\n".join(lines))


@dataclass(frozen=True)
class Composition:
    supergraph: str
    public: str


@dataclass(frozen=True)
class BreakingCheck:
    ok: bool
    report: str
    # Allow-list lines that would allow the breaking changes found.
    unallowed: tuple[str, ...]


# Building the SDL --------------------------------------------------------------------------


def reference_settings() -> Settings:
    """The settings the committed files are made with: default development ports on loopback,
    whatever the environment of the one running the command says."""
    return Settings(
        _env_file=None,
        environment=Environment.DEV,
        host="127.0.0.1",
        port_offset=0,
        ports={},
    )


def subgraph_url(settings: Settings, name: str) -> str:
    return settings.url(f"bff_{name}", "/graphql")


def subgraph_names() -> list[str]:
    from graph.runtime import BFFS

    return sorted(BFFS)


def export_sdl(settings: Settings) -> dict[str, str]:
    """Every BFF's subgraph SDL by name (``Subgraph.schema(...).as_str()``, no server)."""
    from graph.runtime import load

    return {name: load(name).schema(settings).as_str() + "\n" for name in subgraph_names()}


def write_subgraphs(sdl: Mapping[str, str], directory: Path) -> list[Path]:
    """Writes ``<name>.graphql`` for each subgraph and removes files of subgraphs no longer
    in BFFS, so the folder always lists exactly the composed subgraphs."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in sdl.items():
        path = directory / f"{name}.graphql"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    for stale in directory.glob("*.graphql"):
        if stale.stem not in sdl:
            stale.unlink()
    return written


def read_subgraphs(directory: Path) -> dict[str, str]:
    files = sorted(directory.glob("*.graphql"))
    if not files:
        raise SchemaError(f"no subgraph SDL in {directory}: run `adx schema export` first")
    return {path.stem: path.read_text(encoding="utf-8") for path in files}


# Node tools --------------------------------------------------------------------------------


def node_binary() -> str:
    node = shutil.which("node")
    if node is None:
        raise SchemaError(
            "Node.js not found: install it (Debian: apt-get install nodejs npm) or run "
            "`make node-deps`"
        )
    return node


def require_installed(directory: Path) -> None:
    if not (directory / "node_modules").is_dir():
        target = "router-deps" if directory == ROUTER_DIR else "schema-deps"
        raise SchemaError(
            f"{directory.relative_to(REPO_ROOT)}/node_modules is missing: run `make {target}`"
        )


def compose(sdl: Mapping[str, str], urls: Mapping[str, str]) -> Composition:
    """The supergraph and public SDL of the subgraphs (sorted by name, so the output does not
    depend on the order BFFS lists them in)."""
    require_installed(COMPOSE_DIR)
    payload = {
        "subgraphs": [{"name": name, "url": urls[name], "sdl": sdl[name]} for name in sorted(sdl)]
    }
    done = subprocess.run(
        [node_binary(), str(COMPOSE_DIR / "compose.mjs")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=COMPOSE_DIR,
        check=False,
    )
    try:
        result = json.loads(done.stdout)
    except json.JSONDecodeError as error:
        raise SchemaError(
            f"the composition script failed:\n{done.stderr or done.stdout}"
        ) from error
    if result.get("errors"):
        raise CompositionFailed(result["errors"])
    return Composition(supergraph=result["supergraphSdl"] + "\n", public=result["publicSdl"] + "\n")


def breaking_changes(
    old_public: str, new_public: str, allow_list: Path = ALLOW_LIST
) -> BreakingCheck:
    """``graphql-inspector diff`` of two public SDLs; breaking changes the allow-list names are
    reported as dangerous and pass."""
    require_installed(COMPOSE_DIR)
    with tempfile.TemporaryDirectory(prefix="adx-schema-diff-") as tmp:
        old_file, new_file = Path(tmp) / "old.graphql", Path(tmp) / "new.graphql"
        old_file.write_text(old_public, encoding="utf-8")
        new_file.write_text(new_public, encoding="utf-8")
        done = subprocess.run(
            [
                node_binary(),
                str(
                    COMPOSE_DIR / "node_modules" / "@graphql-inspector" / "cli" / "cjs" / "index.js"
                ),
                "diff",
                str(old_file),
                str(new_file),
                "--rule",
                str(COMPOSE_DIR / "allow-listed-breaking-changes.cjs"),
            ],
            capture_output=True,
            text=True,
            cwd=COMPOSE_DIR,
            env={**os.environ, "ADX_SCHEMA_ALLOW_LIST": str(allow_list), "NO_COLOR": "1"},
            check=False,
        )
    marker = "ALLOW-LIST-ENTRY: "
    unallowed = tuple(
        dict.fromkeys(
            line[len(marker) :].strip()
            for line in done.stderr.splitlines()
            if line.startswith(marker)
        )
    )
    other_err = "\n".join(line for line in done.stderr.splitlines() if not line.startswith(marker))
    report = "\n".join(part for part in (done.stdout.strip(), other_err.strip()) if part)
    if done.returncode != 0 and not unallowed:
        raise SchemaError(f"graphql-inspector diff failed:\n{report}")
    return BreakingCheck(ok=done.returncode == 0, report=report, unallowed=unallowed)


def baseline_public(base: str | None) -> tuple[str | None, str]:
    """The public SDL breaking changes are judged against, and where it came from: the version
    in git at ``base`` (default HEAD), else the file in the work tree, else none (first time)."""
    ref = base or "HEAD"
    relative = (SCHEMA_DIR / PUBLIC_FILE).relative_to(REPO_ROOT).as_posix()
    try:
        done = subprocess.run(
            ["git", "show", f"{ref}:{relative}"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        )
    except FileNotFoundError:  # no git on the machine
        done = None
    if done is not None and done.returncode == 0:
        return done.stdout, f"{relative} at {ref}"
    if base is not None:
        raise SchemaError(
            f"cannot read {relative} at {base}: {done.stderr.strip() if done else ''}"
        )
    current = SCHEMA_DIR / PUBLIC_FILE
    if current.exists():
        return current.read_text(encoding="utf-8"), f"{relative} (work tree)"
    return None, "none"


def allow_list_hint(unallowed: tuple[str, ...]) -> str:
    rel = ALLOW_LIST.relative_to(REPO_ROOT)
    lines = "\n".join(f"    {entry}  # <why this break is acceptable>" for entry in unallowed)
    return (
        f"To make these breaking changes on purpose, add these lines to {rel}:\n{lines}\n"
        "(frontends built against the current SDK break: coordinate the release first)"
    )


# Subcommands -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("\n\n", 1)[1] if __doc__ else None
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write each subgraph's SDL (no server started)")
    export.add_argument("--out", type=Path, default=SUBGRAPHS_DIR, help="default: schema/subgraphs")
    comp = actions.add_parser(
        "compose", help="compose the supergraph and public SDL from the exported subgraphs"
    )
    comp.add_argument("--subgraphs", type=Path, default=SUBGRAPHS_DIR)
    comp.add_argument("--out", type=Path, default=SCHEMA_DIR, help="default: schema/")
    check = actions.add_parser(
        "check", help="fail when the code's schema differs from the committed files or breaks them"
    )
    check.add_argument(
        "--base",
        metavar="GIT_REF",
        help="judge breaking changes against schema/public.graphql at this ref (default: HEAD, "
        "e.g. origin/main in a pull-request build)",
    )
    router = actions.add_parser(
        "router", help="run the supergraph router (Hive Gateway) on the router port"
    )
    router.add_argument(
        "--committed",
        action="store_true",
        help="serve the committed schema/supergraph.graphql instead of composing from the code",
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.action == "export":
            return run_export(args.out)
        if args.action == "compose":
            return run_compose(args.subgraphs, args.out)
        if args.action == "check":
            return run_check(args.base)
        return run_router(get_settings(), committed=args.committed)
    except SchemaError as error:
        print(f"adx schema {args.action}: {error}", file=sys.stderr)
        return 1


def run_export(out: Path) -> int:
    for path in write_subgraphs(export_sdl(reference_settings()), out):
        print(f"wrote {_shown(path)}")
    return 0


def run_compose(subgraphs_dir: Path, out: Path) -> int:
    sdl = read_subgraphs(subgraphs_dir)
    settings = reference_settings()
    composition = compose(sdl, {name: subgraph_url(settings, name) for name in sdl})
    public_file = out / PUBLIC_FILE
    if public_file.exists():
        result = breaking_changes(public_file.read_text(encoding="utf-8"), composition.public)
        if not result.ok:
            print(result.report, file=sys.stderr)
            raise SchemaError(
                f"not written: the new public SDL breaks {_shown(public_file)}.\n"
                + allow_list_hint(result.unallowed)
            )
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (
        (SUPERGRAPH_FILE, composition.supergraph),
        (PUBLIC_FILE, composition.public),
    ):
        (out / name).write_text(text, encoding="utf-8")
        print(f"wrote {_shown(out / name)}")
    return 0


def run_check(base: str | None) -> int:
    """Composition, freshness of the committed files, and breaking changes; every problem is
    reported before failing."""
    problems: list[str] = []
    settings = reference_settings()
    fresh_sdl = export_sdl(settings)
    committed_sdl = {p.stem: p.read_text(encoding="utf-8") for p in SUBGRAPHS_DIR.glob("*.graphql")}
    for name in sorted(set(fresh_sdl) | set(committed_sdl)):
        path = SUBGRAPHS_DIR / f"{name}.graphql"
        problem = _difference(path, committed_sdl.get(name), fresh_sdl.get(name))
        if problem:
            problems.append(problem)

    composition = compose(fresh_sdl, {name: subgraph_url(settings, name) for name in fresh_sdl})
    print(f"composition: ok ({', '.join(sorted(fresh_sdl))})")
    for name, text in (
        (SUPERGRAPH_FILE, composition.supergraph),
        (PUBLIC_FILE, composition.public),
    ):
        path = SCHEMA_DIR / name
        committed = path.read_text(encoding="utf-8") if path.exists() else None
        problem = _difference(path, committed, text)
        if problem:
            problems.append(problem)
    if problems:
        print("\n\n".join(problems), file=sys.stderr)
        print(
            f"\nThe schema files are not what the code defines: run `{REGENERATE}`.",
            file=sys.stderr,
        )
    else:
        print("committed schema files: up to date")

    old_public, origin = baseline_public(base)
    if old_public is None:
        print("breaking changes: no committed public SDL to compare with yet")
    else:
        result = breaking_changes(old_public, composition.public)
        if result.ok:
            print(f"breaking changes against {origin}: none that the allow-list does not name")
        else:
            print(result.report, file=sys.stderr)
            print(f"\nBreaking changes against {origin}.", file=sys.stderr)
            print(allow_list_hint(result.unallowed), file=sys.stderr)
            problems.append("breaking changes")
    return 1 if problems else 0


def _difference(path: Path, committed: str | None, fresh: str | None) -> str | None:
    shown = _shown(path)
    if committed == fresh:
        return None
    if committed is None:
        return f"{shown}: missing (the code defines it)"
    if fresh is None:
        return f"{shown}: the code no longer defines this subgraph (remove the file)"
    diff = list(
        difflib.unified_diff(
            committed.splitlines(),
            fresh.splitlines(),
            fromfile=f"{shown} (committed)",
            tofile=f"{shown} (from the code)",
            lineterm="",
        )
    )
    more = len(diff) - DIFF_LINES
    return "\n".join(diff[:DIFF_LINES] + ([f"... ({more} more lines)"] if more > 0 else []))


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


# The router ---------------------------------------------------------------------------------


# The router's cost limit (Hive Gateway's demand control): 1 per object field a document
# selects, 10 more per mutation; a field under a nullable list counts ASSUMED_LIST_SIZE times
# (the gateway does not see through non-null lists, which most of ours are, so in practice it
# bounds the object fields). The SDK's costliest query, the dashboard, costs 44
# (tests/router/test_edge.py measures every query of the SDK through the router).
MAX_COST = 200
ASSUMED_LIST_SIZE = 10


def router_limits(settings: Settings | None = None) -> dict[str, int]:
    """The subgraphs' document limits, which the router enforces first, its body limit, how
    often one email address may be used by the anonymous operations (login per minute;
    registration and password-reset requests per quarter hour: each sends an email), and how
    long a subgraph may take to answer a query or mutation."""
    from graph.schema import MAX_ALIASES, MAX_BODY_BYTES, MAX_DEPTH, MAX_TOKENS

    timeout = (settings or Settings()).router_upstream_timeout_seconds
    return {
        "upstream_timeout_ms": round(timeout * 1000),
        "cost": MAX_COST,
        "list_size": ASSUMED_LIST_SIZE,
        "depth": MAX_DEPTH,
        "aliases": MAX_ALIASES,
        "tokens": MAX_TOKENS,
        "body_bytes": MAX_BODY_BYTES,
        "logins_per_minute": 30,
        "emails_per_quarter_hour": 5,
    }


def router_command(settings: Settings, supergraph: Path) -> tuple[list[str], dict[str, str]]:
    """The gateway's command line and the environment it adds (subgraph URLs from settings)."""
    argv = [
        node_binary(),
        str(GATEWAY_BIN),
        "supergraph",
        str(supergraph),
        "--config-path",
        str(GATEWAY_CONFIG),
        "--host",
        settings.host,
        "--port",
        str(settings.port("router")),
    ]
    urls = {name: subgraph_url(settings, name) for name in subgraph_names()}
    env = {
        "ADX_ROUTER_SUBGRAPH_URLS": json.dumps(urls),
        "ADX_ROUTER_LOG_LEVEL": settings.log_level.lower(),
        "ADX_ROUTER_CORS_ORIGINS": json.dumps(settings.browser_origins),
        "ADX_ROUTER_LIMITS": json.dumps(router_limits(settings)),
        "ADX_ROUTER_PRODUCTION": "1" if settings.is_production else "0",
        "ADX_ROUTER_SHOW_COST": "1" if settings.environment is Environment.DEV else "0",
        **(
            {"ADX_ROUTER_TRUSTED_DOCUMENTS": str(TRUSTED_DOCUMENTS)}
            if settings.trusted_documents_only
            else {}
        ),
        # The gateway's own variables: keep its colours out of JSON log collection.
        **({"NO_COLOR": "1"} if not sys.stdout.isatty() else {}),
    }
    return argv, env


def run_router(settings: Settings, *, committed: bool) -> int:
    require_installed(ROUTER_DIR)
    if committed:
        supergraph = SCHEMA_DIR / SUPERGRAPH_FILE
        if not supergraph.exists():
            raise SchemaError(f"{_shown(supergraph)} is missing: run `{REGENERATE}`")
    else:
        # The schema the code defines now, so a subgraph change is served without `make schema`.
        sdl = export_sdl(settings)
        composition = compose(sdl, {name: subgraph_url(settings, name) for name in sdl})
        supergraph = settings.data_dir / "router" / SUPERGRAPH_FILE
        supergraph.parent.mkdir(parents=True, exist_ok=True)
        supergraph.write_text(composition.supergraph, encoding="utf-8")
    argv, env = router_command(settings, supergraph)
    sys.stdout.flush()
    sys.stderr.flush()
    # Replaced by the gateway: the launcher's signals reach it directly.
    os.execve(argv[0], argv, {**os.environ, **env})  # noqa: S606 (argv built above)
