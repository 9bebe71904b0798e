"""API routers, one per concern; each is also its own Lambda function."""

#: The concerns, each a router here (``functions/routes/<concern>.py``) and a Lambda (functions/handlers.py).
CONCERNS: tuple[str, ...] = ("auth", "settings", "meetings", "chat", "recordings")
#: Modules a concern's router is made of besides ``functions/routes/<concern>.py`` (loaded with it).
PARTS: dict[str, tuple[str, ...]] = {"meetings": ("meetings_router", "host_controls")}
