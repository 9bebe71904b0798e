"""Control plane: FastAPI apps wrapped for AWS Lambda by Mangum.

What the relays and clients share with it (join tokens, the API's schemas, the registry record) lives in
``meetup_protocol``; nothing outside the control plane imports this package.
"""
