#!/bin/sh
# One point of a parameter sweep: wait as long as the work would take, then write the point's result.
# Usage: sweep_task.sh INDEX SECONDS  (writes result.txt in the working directory)
sleep "$2"
echo "point $1 squared $(($1 * $1))" > result.txt
