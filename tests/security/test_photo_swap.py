"""A checked profile photo stays checked: the upload form outlives the check, the served image does not.

moto does not enforce presigned POST policies (AWS does), so the policy's conditions are read from the
policy document itself, and the swap is done for real against moto: what a still-valid form can write.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx

from tests.conftest import Api, User, error_code, png

HTML = b"<!doctype html><script>fetch('/settings').then(r => r.text()).then(alert)</script>"


PNG = png()


def upload_form(api: Api, user: User, purpose: str, content_type: str, size: int) -> dict[str, Any]:
    r = api.post(
        "/settings/images", user, json={"purpose": purpose, "content_type": content_type, "size": size}
    )
    assert r.status_code == 201, r.text
    return r.json()


def post_form(form: dict[str, Any], data: bytes, content_type: str, **overrides: str) -> None:
    fields = {**form["fields"], **overrides}
    r = httpx.post(form["url"], data=fields, files={"file": ("f", data, content_type)})
    assert r.status_code in (200, 204), r.text


def assert_served_as_png(api: Api, url: str) -> None:
    r = api.get(url)
    assert r.status_code == 200, r.text
    assert r.content == PNG
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-disposition"] == 'attachment; filename="photo.png"'
    assert "sandbox" in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_reusing_the_upload_form_after_the_check_cannot_swap_the_photo(api: Api) -> None:
    user = api.new_user()
    form = upload_form(api, user, "photo", "image/png", len(PNG))
    post_form(form, PNG, "image/png")
    r = api.patch("/settings", user, json={"photo_key": form["key"]})
    assert r.status_code == 200, r.text
    verified = r.json()["photo_key"]
    assert verified != form["key"] and verified.startswith(f"users/{user.user_id}/verified/photo-")
    photo_url = r.json()["photo_url"]
    assert_served_as_png(api, photo_url)

    # The form is still valid (its policy has not expired): write HTML, declared as HTML, through it.
    post_form(form, HTML, "text/html", **{"Content-Type": "text/html"})
    assert_served_as_png(api, photo_url)
    assert_served_as_png(api, api.get("/settings", user).json()["photo_url"])

    # Setting the swapped upload again is refused (checked by content, not by the declared type).
    r = api.patch("/settings", user, json={"photo_key": form["key"]})
    assert r.status_code == 400 and error_code(r) == "invalid_image"
    assert api.get("/settings", user).json()["photo_key"] == verified

    # Even served straight from S3, the verified object carries our type and a download disposition.
    from functions import storage

    meta = storage.head(verified)
    assert meta is not None
    assert meta["ContentType"] == "image/png"
    assert meta["ContentDisposition"].startswith("attachment")


def test_the_declared_type_is_not_trusted(api: Api) -> None:
    user = api.new_user()
    form = upload_form(api, user, "photo", "image/jpeg", len(PNG))  # PNG bytes declared as JPEG
    post_form(form, PNG, "image/jpeg")
    r = api.patch("/settings", user, json={"photo_key": form["key"]})
    assert r.status_code == 200, r.text
    assert r.json()["photo_key"].endswith(".png")
    assert_served_as_png(api, r.json()["photo_url"])


def test_the_upload_policy_pins_key_type_and_size(api: Api) -> None:
    user = api.new_user()
    before = time.time()
    form = upload_form(api, user, "photo", "image/png", 1234)
    fields = form["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": form["key"]} in conditions  # the exact key, not a prefix
    assert not any(isinstance(c, list) and c[1:2] == ["$key"] for c in conditions), conditions
    assert {"Content-Type": "image/png"} in conditions
    assert ["content-length-range", 1, 1234] in conditions  # the declared size is the maximum
    assert any(isinstance(c, dict) and "bucket" in c for c in conditions)
    assert fields["key"] == form["key"] and fields["Content-Type"] == "image/png"
    assert form["max_bytes"] == 1234
    from datetime import datetime

    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00")).timestamp()
    assert before < expiration <= time.time() + form["expires_in"] + 1
    # The verified folder is not a place any form targets.
    assert "/verified/" not in form["key"]


def test_other_users_keys_and_verified_keys_are_refused(api: Api) -> None:
    owner, thief = api.new_user(), api.new_user()
    form = upload_form(api, owner, "photo", "image/png", len(PNG))
    post_form(form, PNG, "image/png")
    r = api.patch("/settings", thief, json={"photo_key": form["key"]})
    assert r.status_code == 403 and error_code(r) == "forbidden_key"
    verified = api.patch("/settings", owner, json={"photo_key": form["key"]}).json()["photo_key"]
    for key in (
        verified,  # someone else's checked photo
        verified.replace(owner.user_id, thief.user_id),  # a verified key the thief never had
        f"users/{thief.user_id}/photo/../verified/photo-{'0' * 64}.png",
        f"users/{thief.user_id}/verified/photo-{'0' * 64}.png",
    ):
        r = api.patch("/settings", thief, json={"photo_key": key})
        assert r.status_code == 403 and error_code(r) == "forbidden_key", key
    # A verified photo is not a background either.
    r = api.patch("/settings", owner, json={"background": {"mode": "image", "image_key": verified}})
    assert r.status_code == 403 and error_code(r) == "forbidden_key"


def test_image_links_are_signed_and_expire(api: Api) -> None:
    from functions.routes.settings import _signature

    user, other = api.new_user(), api.new_user()
    form = upload_form(api, user, "photo", "image/png", len(PNG))
    post_form(form, PNG, "image/png")
    body = api.patch("/settings", user, json={"photo_key": form["key"]}).json()
    url = body["photo_url"]
    path, _, query = url.partition("?")
    params = dict(p.split("=") for p in query.split("&"))
    tampered = f"{path}?expires={int(params['expires']) + 3600}&signature={params['signature']}"
    assert error_code(api.get(tampered)) == "link_invalid"
    elsewhere = url.replace(user.user_id, other.user_id)
    assert error_code(api.get(elsewhere)) == "link_invalid"
    past = int(time.time()) - 1
    expired = f"{path}?expires={past}&signature={_signature(body['photo_key'], past)}"
    assert error_code(api.get(expired)) == "link_invalid"
    assert api.get(url).status_code == 200
