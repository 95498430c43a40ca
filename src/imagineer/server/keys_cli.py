"""`imagineer keys create|list|revoke`: the API keys that `imagineer serve` accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from imagineer.config import Settings

if TYPE_CHECKING:
    from imagineer.server.keys import ApiKey, KeyStore

app = typer.Typer(
    help="API keys for `imagineer serve`: create, list, revoke. Only a hash of each key is kept.",
    no_args_is_help=True,
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result.")]


def _settings(ctx: typer.Context) -> Settings:
    """The settings the main command built (its --data-dir, --database-url), else from env."""
    settings = getattr(ctx.find_root().obj, "settings", None)
    return settings if isinstance(settings, Settings) else Settings.from_env()


@contextmanager
def _keys(ctx: typer.Context) -> Iterator[KeyStore]:
    from imagineer.server.keys import KeyNotFound, KeyStore

    try:
        store = KeyStore(_settings(ctx).jobs_url)
        try:
            yield store
        finally:
            store.close()
    except (KeyNotFound, ValueError) as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(1) from None


def _key_dict(key: ApiKey) -> dict[str, str | None]:
    return {
        "id": key.id,
        "user": key.user_id,
        "name": key.name,
        "hint": key.hint,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
    }


@app.command("create")
def create(
    ctx: typer.Context,
    user: Annotated[str, typer.Option("--user", help="Whose jobs and images the key reaches.")],
    name: Annotated[str, typer.Option("--name", help="A label, e.g. the app using it.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Make a key; it is printed once and cannot be shown again."""
    with _keys(ctx) as keys:
        made = keys.create(user, name=name)
    if as_json:
        typer.echo(json.dumps({**_key_dict(made.key), "key": made.secret}, indent=2))
        return
    typer.echo(made.secret)
    typer.echo(
        f"key {made.key.id} for user {made.key.user_id!r}: keep it now, it is not shown again",
        err=True,
    )


@app.command("list")
def list_keys(
    ctx: typer.Context,
    user: Annotated[str | None, typer.Option("--user", help="Only this user's keys.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Keys with their user, label, first characters and when they were last used."""
    with _keys(ctx) as keys:
        found = keys.list(user_id=user)
    if as_json:
        typer.echo(json.dumps([_key_dict(k) for k in found], indent=2))
        return
    for key in found:
        status = "active" if key.active else "revoked"
        used = key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "never"
        typer.echo(f"{key.id}  {key.user_id}  {key.hint}  {status}  used {used}  {key.name}")


@app.command("revoke")
def revoke(
    ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="From keys list.")]
) -> None:
    """Stop a key from working, at once."""
    with _keys(ctx) as keys:
        key = keys.revoke(key_id)
    typer.echo(f"{key.id}: revoked")
