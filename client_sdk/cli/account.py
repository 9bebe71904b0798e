"""``meet register``, ``meet login``, ``meet logout``, ``meet whoami``, ``meet settings``."""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from client_sdk.cli import credentials
from client_sdk.cli.common import ApiOption, console, run, user_text
from client_sdk.client import Client

PasswordOption = Annotated[
    str,
    typer.Option(prompt=True, hide_input=True, envvar="MEETUP_PASSWORD", help="Prompted for when left out."),
]


def register(
    email: Annotated[str, typer.Option(help="Your email address.")],
    name: Annotated[str, typer.Option(help="Display name others see.")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="MEETUP_PASSWORD",
            help="8+ characters.",
        ),
    ],
    api: ApiOption = None,
) -> None:
    """Create an account and log in."""

    async def go() -> None:
        url = credentials.api_url(api)
        async with Client(url) as client:
            await client.register(email, password, name)
            user = await client.login(email, password)
            credentials.save(
                {
                    "api_url": url,
                    "email": user.email,
                    "access_token": client.access_token,
                    "refresh_token": client.refresh_token,
                }
            )
        console.print(
            Text("registered and logged in as ")
            .append_text(user_text(user.display_name, "bold"))
            .append_text(user_text(f" <{user.email}>"))
        )

    run(go())


def login(
    email: Annotated[str, typer.Option(help="Your email address.")],
    password: PasswordOption,
    api: ApiOption = None,
) -> None:
    """Log in; the session is kept in your config directory (readable by you only)."""

    async def go() -> None:
        url = credentials.api_url(api)
        async with Client(url) as client:
            user = await client.login(email, password)
            credentials.save(
                {
                    "api_url": url,
                    "email": user.email,
                    "access_token": client.access_token,
                    "refresh_token": client.refresh_token,
                }
            )
        console.print(
            Text("logged in as ")
            .append_text(user_text(user.display_name, "bold"))
            .append_text(user_text(f" <{user.email}> ({credentials.session_path()})"))
        )

    run(go())


def logout() -> None:
    """Revoke the saved session and forget it."""

    async def go() -> None:
        if credentials.load().get("refresh_token"):
            async with credentials.client() as client:
                await client.logout()
        credentials.clear()
        console.print("logged out")

    run(go())


def whoami(api: ApiOption = None) -> None:
    """Show who is logged in."""

    async def go() -> None:
        async with credentials.client(api) as client:
            user = await client.me()
        console.print(user_text(f"{user.display_name} <{user.email}> ({user.user_id})"))

    run(go())


def settings(
    name: Annotated[str | None, typer.Option(help="New display name.")] = None,
    background: Annotated[str | None, typer.Option(help="none, blur or image.")] = None,
    background_image: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Image for 'image'.")
    ] = None,
    photo: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Profile photo to upload.")
    ] = None,
    api: ApiOption = None,
) -> None:
    """Show your settings, or change them."""

    async def go() -> None:
        async with credentials.client(api) as client:
            changes: dict[str, object] = {}
            if name:
                changes["display_name"] = name
            if photo:
                changes["photo_key"] = await client.upload_image(
                    "photo", photo.read_bytes(), _image_type(photo)
                )
            if background_image:
                key = await client.upload_image(
                    "background", background_image.read_bytes(), _image_type(background_image)
                )
                changes["background"] = {"mode": "image", "image_key": key}
            elif background:
                if background not in ("none", "blur"):
                    raise typer.BadParameter("use --background-image FILE for an image background")
                changes["background"] = {"mode": background}
            current = await client.update_settings(**changes) if changes else await client.settings()
        console.print(user_text(f"name        {current.display_name}"))
        console.print(user_text(f"email       {current.email}"))
        console.print(
            user_text(
                f"background  {current.background.mode}"
                + (f" ({current.background.image_key})" if current.background.image_key else "")
            )
        )
        console.print(user_text(f"photo       {current.photo_key or '-'}"))

    run(go())


def _image_type(path: Path) -> str:
    guessed = mimetypes.guess_type(path.name)[0]
    if guessed not in ("image/jpeg", "image/png", "image/webp"):
        raise typer.BadParameter(f"{path.name}: use a JPEG, PNG or WebP image")
    return guessed
