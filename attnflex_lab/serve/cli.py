"""``python -m attnflex_lab serve --checkpoint PATH [--host 127.0.0.1] [--port 8000]``.

Prints one line ``serving TASK (PROFILE, step N) at http://HOST:PORT`` on stdout once the port is
bound (``--port 0`` picks a free one: read it from that line), then serves until interrupted.
"""

from __future__ import annotations

import argparse
import signal
import sys

from ..profiles import PROFILES


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m attnflex_lab serve",
                                     description="Serve a checkpoint written by `python -m "
                                                 "attnflex_lab train` over HTTP (POST /predict, "
                                                 "GET /health, GET /metrics).")
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
    parser.add_argument("--max-body", type=int, default=None, help="largest request body in bytes")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: requests take turns on the model)")
    parser.add_argument("--log-requests", action="store_true", help="log each request on stderr")
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"error: --port must be in 0..65535, got {args.port}")
    if args.threads <= 0:
        raise SystemExit(f"error: --threads must be positive, got {args.threads}")
    import torch

    from ..training.checkpoint import CheckpointError
    from .app import MAX_BODY_BYTES, make_server
    from .predictor import ServeSetupError, load_predictor

    torch.set_num_threads(args.threads)
    try:
        predictor = load_predictor(args.checkpoint, task=args.task, profile_name=args.profile)
    except (CheckpointError, ServeSetupError, FileNotFoundError) as err:
        raise SystemExit(f"error: {err}") from None
    max_body = MAX_BODY_BYTES if args.max_body is None else args.max_body
    if max_body <= 0:
        raise SystemExit(f"error: --max-body must be positive, got {max_body}")
    server = make_server(predictor, args.host, args.port, max_body=max_body,
                         log_requests=args.log_requests)
    # SIGTERM (a service manager, a test's terminate()) stops as Ctrl-C does: close the socket
    signal.signal(signal.SIGTERM, _interrupt)
    info = predictor.info
    print(f"serving {info.task} ({info.profile}, step {info.step}) at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    print("stopped", file=sys.stderr)
    return 0
