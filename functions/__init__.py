"""Control plane: FastAPI apps wrapped for AWS Lambda by Mangum.

Kept import-light on purpose: relays import ``functions.core.tokens`` to verify join tokens and must not
pull in FastAPI, PynamoDB or boto3 by doing so.
"""
