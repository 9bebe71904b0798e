"""Settings over real HTTP: display name, background, and image uploads through presigned S3 posts."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Api, User, error_code

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200


def upload(api: Api, user: User, purpose: str, data: bytes, content_type: str) -> str:
    r = api.post(
        "/settings/images", user, json={"purpose": purpose, "content_type": content_type, "size": len(data)}
    )
    assert r.status_code == 201, r.text
    form = r.json()
    assert form["key"].startswith(f"users/{user.user_id}/{purpose}/")
    s3 = httpx.post(form["url"], data=form["fields"], files={"file": ("img", data, content_type)})
    assert s3.status_code in (200, 204), s3.text
    return form["key"]


def test_defaults_and_display_name(api: Api) -> None:
    user = api.new_user("Dee")
    r = api.get("/settings", user)
    assert r.status_code == 200
    assert r.json()["background"] == {"mode": "none", "image_key": None}
    assert r.json()["photo_url"] is None
    r = api.patch("/settings", user, json={"display_name": "Dee Dee"})
    assert r.status_code == 200 and r.json()["display_name"] == "Dee Dee"
    assert api.get("/auth/me", user).json()["display_name"] == "Dee Dee"


def test_background_blur_then_image_then_none(api: Api) -> None:
    user = api.new_user()
    assert (
        api.patch("/settings", user, json={"background": {"mode": "blur"}}).json()["background"]["mode"]
        == "blur"
    )
    key = upload(api, user, "background", JPEG, "image/jpeg")
    r = api.patch("/settings", user, json={"background": {"mode": "image", "image_key": key}})
    assert r.status_code == 200
    verified = r.json()["background"]["image_key"]  # the checked copy, not the upload
    assert r.json()["background"]["mode"] == "image"
    assert verified.startswith(f"users/{user.user_id}/verified/background-") and verified.endswith(".jpg")
    image = api.get(r.json()["background_image_url"])  # relative to the API's base URL
    assert image.content == JPEG and image.headers["content-type"] == "image/jpeg"
    # Setting the verified key again (e.g. back from blur) keeps the image.
    r = api.patch("/settings", user, json={"background": {"mode": "image", "image_key": verified}})
    assert r.status_code == 200 and r.json()["background"]["image_key"] == verified
    r = api.patch("/settings", user, json={"background": {"mode": "none"}})
    assert r.json()["background"] == {"mode": "none", "image_key": None}


def test_profile_photo_upload_download_and_removal(api: Api) -> None:
    user = api.new_user()
    key = upload(api, user, "photo", PNG, "image/png")
    r = api.patch("/settings", user, json={"photo_key": key})
    assert r.status_code == 200 and r.json()["photo_key"].startswith(f"users/{user.user_id}/verified/photo-")
    photo_url = api.get("/settings", user).json()["photo_url"]
    photo = api.get(photo_url)  # no token: an <img> loads it
    assert photo.status_code == 200 and photo.content == PNG
    r = api.patch("/settings", user, json={"photo_key": None})
    assert r.json()["photo_key"] is None and r.json()["photo_url"] is None
    assert error_code(api.get(photo_url)) == "image_not_found"  # removed means gone


def test_upload_limits_are_enforced(api: Api) -> None:
    user = api.new_user()
    too_big = api.post(
        "/settings/images", user, json={"purpose": "photo", "content_type": "image/png", "size": 6 << 20}
    )
    assert too_big.status_code == 422 and error_code(too_big) == "validation_error"
    assert too_big.json()["error"]["details"][0]["loc"] == ["body", "size"]
    for content_type in ("image/gif", "image/svg+xml", "text/html"):
        r = api.post(
            "/settings/images", user, json={"purpose": "photo", "content_type": content_type, "size": 10}
        )
        assert r.status_code == 422, content_type
    r = api.post("/settings/images", user, json={"purpose": "photo", "content_type": "image/png", "size": 0})
    assert r.status_code == 422


def test_upload_that_is_not_the_declared_image_is_refused_and_deleted(api: Api) -> None:
    user = api.new_user()
    key = upload(api, user, "photo", b"<html>not a png</html>", "image/png")
    r = api.patch("/settings", user, json={"photo_key": key})
    assert r.status_code == 400 and error_code(r) == "invalid_image"
    again = api.patch("/settings", user, json={"photo_key": key})
    assert error_code(again) == "upload_missing"


def test_keys_of_other_users_and_missing_keys_are_refused(api: Api) -> None:
    owner, thief = api.new_user(), api.new_user()
    key = upload(api, owner, "photo", PNG, "image/png")
    r = api.patch("/settings", thief, json={"photo_key": key})
    assert r.status_code == 403 and error_code(r) == "forbidden_key"
    traversal = f"users/{thief.user_id}/photo/../../{owner.user_id}/photo/x.png"
    assert error_code(api.patch("/settings", thief, json={"photo_key": traversal})) == "forbidden_key"
    missing = f"users/{thief.user_id}/photo/{'0' * 32}.png"  # well formed, never uploaded
    assert error_code(api.patch("/settings", thief, json={"photo_key": missing})) == "upload_missing"


@pytest.mark.parametrize(
    "body",
    [
        {"background": {"mode": "image"}},
        {"background": {"mode": "blur", "image_key": "users/x/background/a.png"}},
        {"background": {"mode": "sparkles"}},
        {"display_name": ""},
        {"display_name": 5},
        {"theme": "dark"},
    ],
)
def test_invalid_updates_get_422(api: Api, body: dict) -> None:
    user = api.new_user()
    r = api.patch("/settings", user, json=body)
    assert r.status_code == 422, r.text
    error_code(r)


def test_settings_need_a_token(api: Api) -> None:
    assert api.get("/settings").status_code == 401
    assert api.patch("/settings", json={"display_name": "x"}).status_code == 401
