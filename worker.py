"""The Nurture worker: runs the journey workflow and every activity on the task queue.

`python worker.py` migrates the database, connects to Temporal (starting an embedded dev
server when TEMPORAL_ADDRESS is unset and none is running), registers missing search
attributes, and runs until SIGTERM or SIGINT, finishing in-flight activities first. The
wiring lives in `starter/worker_wiring.py`; this script is only the entry point.
"""

from starter.worker_wiring import main

if __name__ == "__main__":
    main()
