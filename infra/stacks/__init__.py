"""The stacks: data and API in the primary region, relays in every region, global DNS routing."""
