"""The `qosplane` command."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import yaml

from qosplane.cli.hostside import (
    EXIT_FAILED,
    HostOptions,
    add_host_options,
    cmd_agent,
    cmd_audit_cloud,
    cmd_exec,
    cmd_explain,
    cmd_explain_cloud,
    cmd_inspect,
    cmd_verify,
    local_agent,
    start_when_listening,
)
from qosplane.cli.state import default_state_dir, load_or_create, openrc_lines
from qosplane.client.http import Credentials, QosplaneClient
from qosplane.compiler.upstream.plan import compile_plan
from qosplane.compiler.upstream.report import render_report, render_report_json
from qosplane.model.errors import NotFound, QosplaneError
from qosplane.openstack.case import case_from_mapping

EXIT_OK = 0
EXIT_PLAN_HAS_ERRORS = 1
EXIT_INVALID_INPUT = 2
AGENT_STOP_S = 30  # the local agent's pass in flight, on serve's way out


def _cmd_plan(args: argparse.Namespace) -> int:
    if args.server is not None:
        return _plan_of_server(args)
    if args.case is None:
        print("qosplane plan: give a case file or --server NAME_OR_ID", file=sys.stderr)
        return EXIT_INVALID_INPUT
    path = Path(args.case)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"qosplane plan: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    try:
        body = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        print(f"qosplane plan: {path} is not valid YAML: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    try:
        instance, facts = case_from_mapping(body)
    except QosplaneError as exc:
        print(f"qosplane plan: invalid case {path}: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    plan = compile_plan(instance, facts)
    if args.json:
        json.dump(plan.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_report(plan))
    return EXIT_PLAN_HAS_ERRORS if plan.errors else EXIT_OK


def _credentials(state_dir: str) -> Credentials:
    """OS_* variables when set (as after `eval $(qosplane openrc)`), else the state dir."""
    env = os.environ
    if env.get("OS_AUTH_URL") and env.get("OS_PASSWORD"):
        return Credentials(
            env["OS_AUTH_URL"].removesuffix("/").removesuffix("/identity/v3"),
            env.get("OS_USERNAME", "admin"),
            env["OS_PASSWORD"],
            env.get("OS_PROJECT_NAME", "admin"),
        )
    state = load_or_create(Path(state_dir))
    if not state.endpoint_file.exists():
        raise FileNotFoundError(f"no OS_AUTH_URL set and no server recorded in {state.directory}")
    return Credentials(
        state.endpoint_file.read_text().strip(), "admin", state.admin.password, "admin"
    )


def _plan_of_server(args: argparse.Namespace) -> int:
    try:
        client = QosplaneClient(_credentials(args.state_dir))
        placed = client.server_plan(args.server)
    except FileNotFoundError as exc:
        print(f"qosplane plan: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except NotFound:
        print(f"qosplane plan: no server {args.server}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except (QosplaneError, OSError) as exc:
        print(f"qosplane plan: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    plan = placed.to_json()["plan"]  # the plan as `qosplane plan --json` has always printed it
    if args.json:
        json.dump(plan, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_report_json(plan))
    return EXIT_PLAN_HAS_ERRORS if plan["errors"] else EXIT_OK


def _with_creds(
    command: Callable[[argparse.Namespace, Credentials], int],
) -> Callable[[argparse.Namespace], int]:
    """A host command with the API's credentials (OS_* variables, else the state dir;
    `--api` overrides the endpoint)."""

    def run(args: argparse.Namespace) -> int:
        try:
            creds = _credentials(args.state_dir)
        except FileNotFoundError as exc:
            print(f"qosplane {args.command}: {exc}", file=sys.stderr)
            return EXIT_INVALID_INPUT
        if getattr(args, "api", None):
            creds = Credentials(args.api, creds.username, creds.password, creds.project_name)
        try:
            return command(args, creds)
        except NotFound as exc:
            print(f"qosplane {args.command}: {exc}", file=sys.stderr)
            return EXIT_INVALID_INPUT
        except (QosplaneError, OSError) as exc:
            print(f"qosplane {args.command}: {exc}", file=sys.stderr)
            return EXIT_PLAN_HAS_ERRORS

    return run


def _parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--listen takes HOST:PORT, got {text!r}")
    return host, int(port)


def _positive_workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"--workers takes 1 to 64, got {text!r}")
    return int(text)


def _hash_rounds(text: str) -> int:
    from qosplane.store.identity import PASSWORD_HASH_ROUNDS_MAX, PASSWORD_HASH_ROUNDS_MIN

    low, high = PASSWORD_HASH_ROUNDS_MIN, PASSWORD_HASH_ROUNDS_MAX
    if not text.isdecimal() or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(
            f"--password-hash-rounds takes {low} to {high}, got {text!r}"
        )
    return int(text)


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from qosplane.api.app import build_app
    from qosplane.cli.serving import WORKER_SETTINGS_ENV, ServeSettings, services_for
    from qosplane.store.database import make_engine, sqlite_url, upgrade
    from qosplane.store.identity import DEFAULT_PASSWORD_HASH_ROUNDS

    state = load_or_create(Path(args.state_dir))
    url = args.db or os.environ.get("QOSPLANE_DB") or sqlite_url(state.sqlite_path)
    engine = make_engine(url)
    if args.workers > 1 and engine.dialect.name != "postgresql":
        print(
            "qosplane serve: --workers above 1 needs PostgreSQL (--db postgresql://...): "
            "SQLite takes one writer at a time, so more processes add no throughput",
            file=sys.stderr,
        )
        return EXIT_INVALID_INPUT
    upgrade(engine)
    engine.dispose()
    host, port = args.listen
    state.endpoint_file.write_text(f"http://{host}:{port}\n")
    policy_file = Path(args.policy_file) if args.policy_file else state.directory / "policy.yaml"
    settings = ServeSettings(
        str(state.directory),
        url,
        str(policy_file),
        socket.gethostname(),
        args.password_hash_rounds or DEFAULT_PASSWORD_HASH_ROUNDS,
    )
    services = services_for(settings)
    app = build_app(services)  # also bootstraps the admin and the local host, once, here
    stop = threading.Event()
    agent = None
    endpoint = f"http://{host}:{port}"
    if not args.no_agent:
        try:
            agent = local_agent(
                Credentials(endpoint, "admin", state.admin.password, "admin"),
                services.local_host,
                HostOptions.from_args(args),
            )
        except QosplaneError as exc:
            # Serving on would accept servers that nothing enforces; stop and say what to do.
            print(
                f"qosplane serve: cannot run the local agent: {exc}; "
                "or pass --no-agent to serve a plan-only host",
                file=sys.stderr,
            )
            return EXIT_FAILED
    print(
        f"qosplane serve: {endpoint} (state {state.directory}, database "
        f"{engine.url.render_as_string(hide_password=True)}, {args.workers} worker(s))",
        file=sys.stderr,
        flush=True,
    )
    # Agents' watches are long polls: shutdown does not wait them out.
    options = {"host": host, "port": port, "log_level": args.log_level}
    if args.workers > 1:
        os.environ[WORKER_SETTINGS_ENV] = settings.to_env()
        config = uvicorn.Config(
            "qosplane.cli.serving:worker_app",
            factory=True,
            workers=args.workers,
            timeout_graceful_shutdown=2,
            # A worker answers the supervisor's ping once it has imported and built its
            # app: seconds on a busy 2-core host, where uvicorn's 5 s kills it half-started.
            timeout_worker_healthcheck=60,
            **options,
        )
    else:
        config = uvicorn.Config(app, timeout_graceful_shutdown=2, **options)
    thread = start_when_listening(agent, endpoint, stop) if agent is not None else None

    def agent_done() -> None:
        """Once uvicorn has stopped serving: the agent finishes its pass, not cut mid-way
        (uvicorn re-raises SIGTERM once it returns, which ends the process at once)."""
        stop.set()
        if thread is not None:
            thread.join(timeout=AGENT_STOP_S)

    try:
        _run_uvicorn(config, stop.set, agent_done)
    finally:
        agent_done()
    return EXIT_OK


def _run_uvicorn(
    config: object, on_exit: Callable[[], None], on_stopped: Callable[[], None]
) -> None:
    """One server in this process, or uvicorn's supervisor of `config.workers` processes
    sharing the listening socket (restarting any that dies). `on_exit` runs when SIGINT or
    SIGTERM arrives, before uvicorn stops listening: the local agent stops first, rather
    than meeting a refused connection on its way out; `on_stopped` once it has shut down."""
    import asyncio

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            on_exit()
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            await asyncio.to_thread(on_stopped)

    class Supervisor(Multiprocess):
        def handle_int(self) -> None:
            on_exit()
            super().handle_int()

        def handle_term(self) -> None:
            on_exit()
            super().handle_term()

    assert isinstance(config, uvicorn.Config)
    if config.workers > 1:
        Supervisor(config, sockets=[config.bind_socket()]).run()
    else:
        Server(config).run()


def _cmd_openrc(args: argparse.Namespace) -> int:
    state = load_or_create(Path(args.state_dir))
    try:
        lines = openrc_lines(state)
    except FileNotFoundError as exc:
        print(f"qosplane openrc: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    print("\n".join(lines))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qosplane", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plan = sub.add_parser(
        "plan",
        help="compile one instance's QoS intent to every host artifact, touching nothing",
        description="Exit 0: plan compiled; 1: compiled but some limits cannot be honoured "
        "(see errors); 2: invalid input.",
    )
    plan.add_argument("case", nargs="?", help="the case file (YAML), see design.md section 1")
    plan.add_argument(
        "--server",
        help="print the stored plan of this server (name or id) from "
        "a running qosplane serve (OS_* variables, else --state-dir)",
    )
    plan.add_argument("--state-dir", default=str(default_state_dir()))
    plan.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    plan.set_defaults(func=_cmd_plan)

    serve = sub.add_parser("serve", help="run the OpenStack-compatible API with its store")
    serve.add_argument(
        "--listen",
        type=_parse_listen,
        default=("127.0.0.1", 8770),
        help="HOST:PORT (default 127.0.0.1:8770)",
    )
    serve.add_argument(
        "--state-dir",
        default=str(default_state_dir()),
        help="database, admin credentials (default $XDG_DATA_HOME/qosplane)",
    )
    serve.add_argument(
        "--db",
        help="database URL (default: SQLite in the state directory; "
        "or QOSPLANE_DB), e.g. postgresql://user@host/db",
    )
    serve.add_argument(
        "--policy-file",
        help="an oslo.policy file overriding upstream's default rules by name "
        "(default: policy.yaml in the state directory, when it exists)",
    )
    serve.add_argument(
        "--workers",
        type=_positive_workers,
        default=1,
        help="API processes on the one port (default 1; above 1 needs PostgreSQL)",
    )
    serve.add_argument(
        "--password-hash-rounds",
        type=_hash_rounds,
        help="PBKDF2-SHA256 iterations for passwords set from now on, as Keystone's "
        "[identity] password_hash_rounds (default 200000); stored passwords keep their own",
    )
    serve.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.set_defaults(func=_cmd_serve)

    serve.add_argument(
        "--no-agent",
        action="store_true",
        help="do not run the local host's agent (a plan-only host); by default serve runs it "
        "and stops, saying what is missing, when this machine cannot",
    )
    add_host_options(serve)  # the local agent's, as `qosplane agent` takes them

    agent = sub.add_parser(
        "agent", help="run the host agent: watch this host's desired state, apply, repair"
    )
    agent.add_argument("--api", help="API endpoint (default: OS_AUTH_URL's, else the state dir's)")
    agent.add_argument("--host", default=socket.gethostname(), help="this host's name")
    agent.add_argument("--state-dir", default=str(default_state_dir()))
    agent.add_argument("--drift-check-s", type=float, default=1.0)
    add_host_options(agent)
    agent.set_defaults(func=_with_creds(cmd_agent))

    run_in = sub.add_parser(
        "exec",
        help="run a command inside an instance (namespace, cgroup)",
        usage="qosplane exec [options] SERVER -- CMD...",
    )
    run_in.add_argument("server")
    run_in.add_argument("cmd", nargs=argparse.REMAINDER)
    run_in.add_argument("--state-dir", default=str(default_state_dir()))
    add_host_options(run_in)
    run_in.set_defaults(func=_with_creds(cmd_exec))

    verify = sub.add_parser(
        "verify",
        help="measure every limit of a server with real traffic",
        description="Exit 0: every limit held; 1: one failed; 3: none failed but one was "
        "inconclusive (the path without the limit carries less than 1.2 times it).",
    )
    verify.add_argument("server")
    verify.add_argument("--seconds", type=int, default=5, help="measured seconds per limit")
    verify.add_argument("--json", action="store_true")
    verify.add_argument("--state-dir", default=str(default_state_dir()))
    add_host_options(verify)
    verify.set_defaults(func=_with_creds(cmd_verify))

    explain = sub.add_parser(
        "explain", help="the effective QoS of a server across every layer, guest-relative"
    )
    explain.add_argument("server")
    explain.add_argument("--json", action="store_true")
    explain.add_argument("--state-dir", default=str(default_state_dir()))
    explain.add_argument(
        "--os-cloud",
        default=None,
        metavar="NAME",
        help="read SERVER from a real OpenStack cloud, read-only, instead of qosplane's own "
        "API: clouds.yaml's NAME, or - for OS_CLOUD or the OS_* variables",
    )
    audit = sub.add_parser(
        "audit", help="every server of a real OpenStack cloud, read-only: a table of findings"
    )
    audit.add_argument(
        "--os-cloud",
        nargs="?",
        const="",
        default="",
        metavar="NAME",
        help="clouds.yaml's NAME; without it (or -), OS_CLOUD or the OS_* variables",
    )
    audit.add_argument(
        "--all-projects", action="store_true", help="every project's servers (admin only)"
    )
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(func=cmd_audit_cloud)
    inspect = sub.add_parser(
        "inspect",
        help="what this host's libvirt and tc really hold for one server against its "
        "plan: holds, differs or missing per limit (read-only)",
    )
    inspect.add_argument("server")
    inspect.add_argument(
        "--os-cloud",
        default=None,
        metavar="NAME",
        help="the plan from a real OpenStack cloud (as explain --os-cloud: clouds.yaml's "
        "NAME, or - for OS_CLOUD or the OS_* variables), not qosplane's API",
    )
    inspect.add_argument(
        "--uri",
        default="qemu:///system",
        help="the libvirt connection holding the domain (qosplane's own libvirtd: "
        "qemu:///system?socket=STATE/libvirt/PREFIX/run/libvirt/libvirt-sock)",
    )
    inspect.add_argument(
        "--netns",
        default=None,
        metavar="NS",
        help="the network namespace the domain's taps live in (default: this one)",
    )
    inspect.add_argument(
        "--ovs-db",
        default=None,
        metavar="DB",
        help="the Open vSwitch database whose Interface policing to read (default: the "
        "host's own at /var/run/openvswitch/db.sock, when it runs)",
    )
    inspect.add_argument(
        "--ovn-nb",
        default=None,
        metavar="DB",
        help="the OVN Northbound database whose QoS rows to read (tcp:IP:6641, "
        "unix:PATH; default: not read)",
    )
    inspect.add_argument("--json", action="store_true")
    inspect.add_argument("--state-dir", default=str(default_state_dir()))
    native_inspect = _with_creds(cmd_inspect)
    inspect.set_defaults(
        func=lambda args: cmd_inspect(args) if args.os_cloud is not None else native_inspect(args)
    )
    native = _with_creds(cmd_explain)
    explain.set_defaults(
        func=lambda args: cmd_explain_cloud(args) if args.os_cloud is not None else native(args)
    )

    openrc = sub.add_parser("openrc", help="print export OS_... lines for the openstack CLI")
    openrc.add_argument("--state-dir", default=str(default_state_dir()))
    openrc.set_defaults(func=_cmd_openrc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
