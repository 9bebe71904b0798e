"""The embedded default: the whole platform on loopback, speaking the real wire protocols.

moto's server stands in for DynamoDB and S3 (a separate process, reached over HTTP like AWS), the
control-plane API runs under uvicorn, and relays (once they exist) run as local processes.
"""

from local_stack.stack import LocalStack

__all__ = ["LocalStack"]
