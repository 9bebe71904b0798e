"""The web client's pages without media: served by the local stack, account, settings with presigned
image uploads to S3 (moto), sign out and in again, and a refused join shown to the user."""

from __future__ import annotations

import httpx

from tests.browser.conftest import Launch
from tests.conftest import png


def test_the_local_stack_serves_the_client_next_to_the_api(stack) -> None:
    assert stack.web_url == f"{stack.api_url}/app/"
    index = httpx.get(stack.web_url)
    assert index.status_code == 200 and 'src="js/app.js"' in index.text
    assert httpx.get(f"{stack.web_url}config.json").json() == {"apiBaseUrl": ""}  # same origin
    script = httpx.get(f"{stack.web_url}js/relay.js")
    assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert "/app" not in httpx.get(f"{stack.api_url}/openapi.json").text  # the API's contract is unchanged


def test_the_local_stack_serves_mediapipe_from_npm_with_the_client(stack) -> None:
    """The segmentation model and its wasm (npm, web/vendor.json) come from this origin, never a CDN,
    with the type streaming compilation needs."""
    base = f"{stack.web_url}vendor/selfie_segmentation/"
    wasm = httpx.get(f"{base}selfie_segmentation_solution_simd_wasm_bin.wasm")
    assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
    assert wasm.content[:4] == b"\0asm"
    for name in (
        "selfie_segmentation.js",
        "selfie_segmentation_landscape.tflite",
        "selfie_segmentation.binarypb",
    ):
        assert httpx.get(f"{base}{name}").status_code == 200, name
    assert httpx.get(f"{base}../../vendor.json").status_code == 200  # the list itself, harmless
    assert httpx.get(f"{base}..%2F..%2F..%2Fpackage.json").status_code == 404  # nothing outside the folder


async def test_account_settings_photo_and_a_refused_join(stack, launch: Launch) -> None:
    ann = await launch("Ann")
    page = ann.page
    await ann.register(stack.web_url)

    # Display name and background (an uploaded image), saved through the API.
    form = page.locator("#settings-form")
    await form.locator("[name=display_name]").fill("Ann Lee")
    await form.locator("[name=background][value=image]").check()
    await form.locator("[name=background_image]").set_input_files(
        files=[{"name": "beach.png", "mimeType": "image/png", "buffer": png(32, 24)}]
    )
    await form.locator("[type=submit]").click()
    await page.wait_for_selector(".toast:has-text('Settings saved')")
    assert await page.text_content("#account-name") == "Ann Lee"

    # Profile photo: presigned POST straight to S3, then the key is set (the API checks the upload).
    await page.set_input_files(
        "#photo-input", files=[{"name": "me.png", "mimeType": "image/png", "buffer": png()}]
    )
    await page.wait_for_selector(".toast:has-text('Photo updated')")
    await page.wait_for_function(
        "() => !document.querySelector('#photo-preview').hidden"
        " && document.querySelector('#photo-preview').naturalWidth === 8"
    )
    settings = await page.evaluate("window.meetup.api.settings()")
    assert settings["display_name"] == "Ann Lee"
    assert settings["background"]["mode"] == "image"
    assert settings["background"]["image_key"].startswith("users/")
    assert settings["photo_key"].startswith("users/") and settings["photo_key"].endswith(".png")

    # Sign out, and back in with the login form.
    meeting_id, passcode = await ann.create_meeting("Settings")
    await page.click("#sign-out")
    await page.wait_for_selector("#view-auth:not([hidden])")
    assert await page.evaluate("sessionStorage.length") == 0
    await page.fill("#login-form [name=email]", ann.email)
    await page.fill("#login-form [name=password]", ann.password)
    await page.click("#login-form [type=submit]")
    await page.wait_for_selector("#view-home:not([hidden])")
    await page.wait_for_function("() => document.querySelector('#account-name').textContent === 'Ann Lee'")

    # Someone else with a wrong passcode is refused, and told so; the page stays usable.
    ben = await launch("Ben")
    await ben.register(stack.web_url)
    await ben.page.fill("#join-form [name=meeting_id]", meeting_id)
    await ben.page.fill("#join-form [name=passcode]", passcode + "X")
    await ben.page.click("#join-form [type=submit]")
    await ben.page.wait_for_selector(".toast.error:has-text('no meeting with this id and passcode')")
    assert await ben.page.is_visible("#view-home")
    assert ben.errors == [  # Chromium logs the refused request, the client shows the API's message
        "console.error: Failed to load resource: the server responded with a status of 403 (Forbidden)",
        "console.error: no meeting with this id and passcode",
    ]
    assert not ann.errors, ann.errors
