"""Three "regions" on one machine: network namespaces joined by a user-space WAN router (see wan.py)."""
