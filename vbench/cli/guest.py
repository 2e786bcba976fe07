"""`vbench guest`: the microguest image (build, cache)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from vbench.cli import app

guest_app = typer.Typer(
    name="guest",
    help="The microguest: a kernel + initramfs built from this host's files.",
    no_args_is_help=True,
)
app.add_typer(guest_app)


@guest_app.command("build")
def build(
    force: bool = typer.Option(False, "--force", help="Rebuild even if the cache is current."),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Cache directory (default: /var/cache/vbench as root, else $XDG_CACHE_HOME/vbench).",
    ),
) -> None:
    """Build (or find in the cache) the microguest and print where it is."""
    # Imported here so that `vbench --help` stays fast.
    from vbench.guest.microguest import build_microguest, default_cache_root

    messages: list[str] = []
    started = time.monotonic()
    mg = build_microguest(cache, force=force, progress=messages.append)
    elapsed = time.monotonic() - started
    hit = any(m.startswith("cache hit") for m in messages)
    typer.echo(
        f"cache:   {'hit' if hit else 'built'} ({elapsed:.1f} s) in {cache or default_cache_root()}"
    )
    typer.echo(f"kernel:  {mg.kernel} ({mg.kernel_release})")
    typer.echo(f"initrd:  {mg.initrd} ({mg.size_bytes / 2**20:.1f} MiB)")
    typer.echo(f"cmdline: {mg.cmdline}")
    typer.echo(f"digest:  {mg.digest}")
