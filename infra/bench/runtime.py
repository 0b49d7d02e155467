"""A minimal Lambda custom runtime for a Python handler: imports the handler (`_HANDLER`,
`module.function`, from this directory), then polls the Runtime API at
`AWS_LAMBDA_RUNTIME_API` for events and posts each answer back, as Lambda's Python runtime
does. Used by the intake benchmark to run the Powertools handler under the same stand-in
Runtime API as our functions' `bootstrap`.
"""

import http.client
import importlib
import json
import os
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class Context:
    def __init__(self, request_id, deadline_ms, arn):
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "bench")
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def main():
    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), function_name)
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    api = http.client.HTTPConnection(host, int(port))
    api.connect()
    api.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    base = "/2018-06-01/runtime/invocation"
    while True:
        api.request("GET", f"{base}/next")
        response = api.getresponse()
        event = json.loads(response.read())
        request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
        deadline = int(response.getheader("Lambda-Runtime-Deadline-Ms") or "0")
        arn = response.getheader("Lambda-Runtime-Invoked-Function-Arn") or ""
        try:
            result = handler(event, Context(request_id, deadline, arn))
            api.request("POST", f"{base}/{request_id}/response", body=json.dumps(result),
                        headers={"content-type": "application/json"})
        except Exception as e:  # the runtime reports it, as Lambda's does
            error = {"errorMessage": str(e), "errorType": type(e).__name__,
                     "stackTrace": traceback.format_exc().splitlines()}
            api.request("POST", f"{base}/{request_id}/error", body=json.dumps(error),
                        headers={"content-type": "application/json"})
        api.getresponse().read()


if __name__ == "__main__":
    main()
