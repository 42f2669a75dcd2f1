"""`rft sandbox serve`: this machine's sandboxes for graders elsewhere (rft.graders.sandbox.service)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from rft.app.errors import App

sandbox_app = App(no_args_is_help=True, help="Serve this machine's code sandboxes over HTTP.")


@sandbox_app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="address to listen on (0.0.0.0: every interface)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port (0: any free one; the address is printed)")] = 8123,
    token: Annotated[
        str | None, typer.Option(help="bearer token clients must send (visible in ps: prefer the two below)")
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="read the token from this file's first line (else $RFT_SANDBOX_TOKEN)")
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="sandbox backend behind the server (default: auto where known, else local)"),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="sandboxes in the pool (default: this machine's CPUs)")
    ] = None,
    max_body: Annotated[int, typer.Option(help="largest request body in bytes (413 above)")] = 8 * 2**20,
    per_client: Annotated[
        int | None, typer.Option(help="runs at once per client address (429 above; default: workers)")
    ] = None,
    max_timeout: Annotated[
        float, typer.Option(help="largest per-run time limit a client may ask, seconds")
    ] = 60.0,
    max_memory_mb: Annotated[int, typer.Option(help="largest per-run memory limit a client may ask")] = 4096,
    insecure_no_token: Annotated[
        bool, typer.Option("--insecure-no-token", help="run without a token (loopback addresses only)")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no log line per request")] = False,
) -> None:
    """Serve `run(program, stdin, limits)` over HTTP with a bearer token: graders elsewhere use it with
    `"sandbox": "remote", "sandbox_options": {"url": ...}` and $RFT_SANDBOX_TOKEN. Stops on Ctrl-C/SIGTERM."""
    from rft.graders.sandbox import SandboxUnavailable, sandbox_names
    from rft.graders.sandbox.remote import TOKEN_ENV, read_token
    from rft.graders.sandbox.service import ServiceConfig, default_workers, serve

    try:
        secret = read_token(token, str(token_file) if token_file else None)
        if token is None and token_file is None and secret:
            os.environ.pop(TOKEN_ENV, None)  # not passed on to the sandboxes' servers
        n = workers or default_workers()
        config = ServiceConfig(
            token=secret,
            host=host,
            port=port,
            backend=backend or ("auto" if "auto" in sandbox_names() else "local"),
            workers=n,
            max_body=max_body,
            per_client=per_client or n,
            max_timeout=max_timeout,
            max_memory_mb=max_memory_mb,
            insecure_no_token=insecure_no_token,
        )
        serve(config, quiet=quiet)
    except (ValueError, SandboxUnavailable, OSError) as e:
        typer.secho(f"rft sandbox serve: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
