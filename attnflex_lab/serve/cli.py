"""``python -m attnflex_lab serve --checkpoint PATH [--host 127.0.0.1] [--port 8000]``.

Prints one line ``serving TASK (PROFILE, step N) at http://HOST:PORT`` on stdout once the port
listens (``--port 0`` picks a free one: read it from that line), then serves with uvicorn until
SIGTERM or Ctrl-C, which stop accepting, let the requests in flight finish, and exit 0.
"""

from __future__ import annotations

import signal
import socket
import sys

from ..cli_errors import OneLineParser, UsageError, int_in_range
from ..profiles import PROFILES

BACKLOG = 2048            # connections the kernel queues before accept (the stdlib server had 5)
MAX_CONNECTIONS = 512     # uvicorn answers 503 beyond this many open connections and requests
KEEP_ALIVE_S = 5          # an idle keep-alive connection is closed after this many seconds


def _parser() -> OneLineParser:
    from .limits import Limits

    default = Limits()
    parser = OneLineParser(prog="python -m attnflex_lab serve",
                           description="Serve a checkpoint written by `python -m attnflex_lab "
                                       "train` over HTTP (POST /predict, GET /health, /ready, "
                                       "/metrics, /docs).")
    parser.add_argument("--checkpoint", required=True,
                        help="a step_*.pt file, or a --checkpoint-dir folder (its newest)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default 8000)")
    parser.add_argument("--task", default=None,
                        help="the recipe it was trained as, when its weights fit several (sort, "
                             "reverse)")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="the profile it was trained in (default: found from the weights)")
    parser.add_argument("--max-body", type=int, default=default.max_body,
                        help=f"largest request body in bytes (default {default.max_body})")
    parser.add_argument("--deadline", type=float, default=default.deadline_s,
                        help=f"seconds a request may take before a 504 (default {default.deadline_s:g})")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: requests take turns on the model)")
    parser.add_argument("--log-requests", action="store_true", help="log each request on stderr")
    parser.add_argument("--debug", action="store_true", help="print a traceback with an error")
    return parser


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound and listening before the model's address is printed, so no client that
    reads the line can arrive before the server accepts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:  # port taken, an address not on this machine, a port below 1024
        sock.close()
        raise UsageError(f"--host {host} --port {port}: cannot listen there: "
                         f"{err.strerror or err}") from None
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    int_in_range("--port", args.port, 0, 65535)
    int_in_range("--threads", args.threads, 1, 1024)
    int_in_range("--max-body", args.max_body, 1, 2**31)
    if not 0.01 <= args.deadline <= 3600:
        raise UsageError(f"--deadline must be in 0.01..3600 seconds, got {args.deadline:g}")
    import torch
    import uvicorn

    from ..training.checkpoint import CheckpointError
    from .app import create_app
    from .limits import Limits
    from .predictor import ServeSetupError, load_predictor

    torch.set_num_threads(args.threads)
    try:
        predictor = load_predictor(args.checkpoint, task=args.task, profile_name=args.profile)
    except (CheckpointError, ServeSetupError, OSError) as err:
        raise UsageError(f"--checkpoint {args.checkpoint}: {err}") from None
    app = create_app(predictor, Limits(max_body=args.max_body, deadline_s=args.deadline))
    config = uvicorn.Config(app, backlog=BACKLOG, limit_concurrency=MAX_CONNECTIONS,
                            timeout_keep_alive=KEEP_ALIVE_S,
                            timeout_graceful_shutdown=max(5.0, args.deadline + 1),
                            access_log=args.log_requests,
                            log_level="info" if args.log_requests else "warning")
    server = uvicorn.Server(config)
    sock = _listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    # Installed before the address is printed, so a SIGTERM from a client that read it is never
    # lost. While uvicorn runs it catches SIGTERM and SIGINT itself, shuts down gracefully, then
    # raises the signal again for the handler it found: this one, so the process exits with 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: setattr(server, "should_exit", True))
    info = predictor.info
    print(f"serving {info.task} ({info.profile}, step {info.step}) at http://{host}:{port}", flush=True)
    server.run(sockets=[sock])
    print("stopped", file=sys.stderr)
    return 0
