"""fraudctl: the platform's command line and local runtime."""

import os

# grpc's C core logs a failed TLS handshake on stderr at INFO; fraudctl says what failed in one line instead.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
