#!/bin/sh
# Pulls IMAGE in a loop until STOP_FILE exists or MAX_SECONDS have passed; between two pulls, three
# HTTPS requests to /v2/ (a 401 is an answer) sample the registry more often. One line per try in
# LOG: "ok <kind> <time>" or "FAIL <kind> <time> <message>" (time in seconds since the epoch, so the
# scenario can place each try against the registry's restart), then "end". A pull of an image already
# present still asks the registry for its manifest: a refused or cut connection fails it, and so
# does a pull that hangs for 45 s (it is stopped and logged, so that the loop goes on and ends).
# Usage: pull_watch.sh IMAGE LOG STOP_FILE MAX_SECONDS CA_FILE
image=$1 log=$2 stop=$3 max=$4 ca=$5
registry=${image%%/*}
end=$(($(date +%s) + max))
: > "$log"
while [ ! -e "$stop" ] && [ "$(date +%s)" -lt "$end" ]; do
    if out=$(timeout 45 docker pull -q "$image" 2>&1); then
        echo "ok pull $(date +%s.%N)" >> "$log"
    else
        rc=$?
        echo "FAIL pull $(date +%s.%N) exit $rc $(echo "$out" | tr '\n' ' ')" >> "$log"
    fi
    for _ in 1 2 3; do
        code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' --cacert "$ca" "https://$registry/v2/")
        if [ "$code" = 401 ]; then
            echo "ok v2 $(date +%s.%N)" >> "$log"
        else
            echo "FAIL v2 $(date +%s.%N) HTTP $code" >> "$log"
        fi
        sleep 0.1
    done
done
echo end >> "$log"
