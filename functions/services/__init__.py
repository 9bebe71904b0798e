"""Domain logic shared by several routers."""
